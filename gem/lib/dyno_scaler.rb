# frozen_string_literal: true

require_relative "dyno_scaler/version"

# The dyno-scaler gem: it carries the `dyno-scaler` executable (exe/dyno-scaler runs the bundled binary). The Ruby
# side of later work (a Rack middleware) goes here.
module DynoScaler
end
