# frozen_string_literal: true

module DynoScaler
  # In a Rails app, `require "dyno_scaler/queue_time"` (or `gem "dyno-scaler", require: "dyno_scaler/queue_time"`)
  # puts the middleware at the top of the stack, so every request's queue time is measured, static files included
  # (they wait for a thread as any other). Not in a console, a runner or a rake task (no requests there).
  class Railtie < ::Rails::Railtie
    initializer "dyno_scaler.queue_time" do |app|
      app.config.middleware.insert(0, DynoScaler::QueueTime)
    end
  end
end
