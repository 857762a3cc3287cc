# frozen_string_literal: true

# The platform gem that carries the dyno-scaler binary (built by scripts/build-gem, which stages the binary in
# libexec/ and sets the version from the crate's).
require_relative "lib/dyno_scaler/version"

Gem::Specification.new do |spec|
  spec.name = "dyno-scaler"
  spec.version = DynoScaler::VERSION
  spec.platform = "x86_64-linux"
  spec.authors = ["dyno-scaler contributors"]
  spec.summary = "Autoscaler for background-job workers (Sidekiq, Resque, DelayedJob, GoodJob, Solid Queue) on Heroku and Kubernetes"
  spec.description = "Runs the dyno-scaler daemon as one more process type: `scaler: bundle exec dyno-scaler run`. " \
                     "The gem carries the Linux binary; nothing is compiled at install."
  spec.license = "MIT OR Apache-2.0"
  spec.required_ruby_version = ">= 2.7"
  spec.files = Dir["lib/**/*.rb", "exe/*", "libexec/*", "README.md"]
  spec.bindir = "exe"
  spec.executables = ["dyno-scaler"]
  spec.require_paths = ["lib"]
end
