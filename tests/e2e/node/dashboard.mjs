// Renders dyno-scaler's dashboard in Debian's chromium (driven by playwright-core) and prints what a test checks,
// as JSON: the process types, the chart's series, the events, console errors, requests that left the page's own
// origin, and, given a token, what pausing and resuming from the page answered.
//
// node dashboard.mjs URL SCREENSHOT.png [TOKEN]
import { chromium } from "playwright-core";

const [url, shot, token] = process.argv.slice(2);
const origin = new URL(url).origin;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1140, height: 900 } });
const consoleErrors = [];
const foreign = [];
const requests = [];
page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("request", (r) => {
  requests.push(r.url());
  if (!r.url().startsWith(origin + "/") && r.url() !== origin) foreign.push(r.url());
});
const response = await page.goto(url, { waitUntil: "load" });
await page.screenshot({ path: shot, fullPage: true });
const out = {
  status: response.status(),
  csp: response.headers()["content-security-policy"] || null,
  processTypes: await page.$$eval("section[data-process-type]", (s) => s.map((e) => e.dataset.processType)),
  series: await page.$$eval("svg.chart path.series", (p) => p.map((e) => ({ name: e.dataset.series, d: e.getAttribute("d") }))),
  charts: await page.$$eval("svg.chart", (s) => s.map((e) => e.getAttribute("aria-label"))),
  ticks: await page.$$eval("svg.chart", (s) => s.map((e) => [...e.querySelectorAll("text.tick")].map((t) => t.textContent))),
  events: await page.$$eval("tr.event", (r) => r.map((e) => ({ kind: e.className.replace("event ", ""), text: e.innerText }))),
  savings: await page.$eval("p.savings", (p) => ({ text: p.innerText, workerSecs: Number(p.dataset.workerSecs) })).catch(() => null),
  forms: await page.$$eval("form", (f) => f.map((e) => e.getAttribute("action"))),
  html: await page.content(),
};
// What rendering the page logged (the token's 403 below is logged by the browser as a failed load, on purpose).
out.consoleErrors = [...consoleErrors];
if (token !== undefined) {
  // Pause for 15 minutes from the page, then resume, as an operator would; first with a wrong token.
  const act = async (action, tok) => {
    await page.goto(url, { waitUntil: "load" });
    const form = page.locator(`form[action="${action}"]`).first();
    await form.locator('input[name="token"]').fill(tok);
    const [resp] = await Promise.all([page.waitForNavigation(), form.locator("button").click()]);
    return { status: resp.status(), text: await page.locator("#result").innerText() };
  };
  out.wrong = await act("/pause", "not-the-token-at-all");
  out.paused = await act("/pause", token);
  // Every instance sees a pause at its next lease renewal (a third of the lease TTL): reload until it shows.
  for (let i = 0; i < 40; i++) {
    await page.goto(url, { waitUntil: "load" });
    out.pausedPage = await page.locator("section[data-process-type] .pause").first().innerText();
    if (out.pausedPage.startsWith("paused")) break;
    await page.waitForTimeout(250);
  }
  out.resumed = await act("/resume", token);
}
out.foreign = foreign;
out.requests = requests.length;
await browser.close();
console.log(JSON.stringify(out));
