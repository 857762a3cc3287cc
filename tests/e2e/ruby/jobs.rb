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

# Sleeps `seconds` and adds the time it ran to the Redis key `key` (a float), and 1 to `key:count`: the truth a
# recording of the queue is checked against.
class NapJob
  include Sidekiq::Worker

  def perform(seconds, key)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    sleep seconds
    ran = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    Sidekiq.redis do |r|
      r.incrbyfloat(key, ran)
      r.incr("#{key}:count")
    end
  end
end
