# Jobs for the end-to-end tests, run by real Sidekiq 6.4 processes (`sidekiq -r tests/e2e/ruby/jobs.rb`).
require "sidekiq"

# Sleeps `seconds`, writing `<marker>.started` when it starts and `<marker>` when it ends.
class SleepJob
  include Sidekiq::Worker

  def perform(seconds, marker)
    File.write("#{marker}.started", ENV.fetch("DYNO", ""))
    sleep seconds
    File.write(marker, Time.now.to_f.to_s)
  end
end
