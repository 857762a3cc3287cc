// A real node-resque worker for the end-to-end tests: REDIS_PORT, QUEUE; the job `sleep(ms, marker)` writes
// `<marker>.started` when it starts and `<marker>` when it ends.
const fs = require("fs");
const { Worker } = require("node-resque");

const jobs = {
  sleep: {
    perform: async (ms, marker) => {
      fs.writeFileSync(`${marker}.started`, String(Date.now() / 1000));
      await new Promise((resolve) => setTimeout(resolve, ms));
      fs.writeFileSync(marker, String(Date.now() / 1000));
    },
  },
};

async function main() {
  const connectionDetails = { host: "127.0.0.1", port: Number(process.env.REDIS_PORT), namespace: "resque" };
  const worker = new Worker({ connection: connectionDetails, queues: [process.env.QUEUE || "default"], timeout: 500 }, jobs);
  await worker.connect();
  worker.start();
  const stop = async () => {
    await worker.end();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
