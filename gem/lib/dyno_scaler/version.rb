# frozen_string_literal: true

module DynoScaler
  # The version of the gem, the same as the binary's (scripts/build-gem writes it from the crate's).
  VERSION = "0.0.0"
end
