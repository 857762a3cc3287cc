# frozen_string_literal: true

require_relative "dyno_scaler/version"

# The dyno-scaler gem: it carries the `dyno-scaler` executable (see exe/dyno-scaler). The Ruby side of later work
# (a Rack middleware) goes here.
module DynoScaler
  # Where the bundled binary is.
  def self.binary
    File.expand_path("../libexec/dyno-scaler", __dir__)
  end
end
