// Drives Debian's chromium (playwright-core, no browser download) through the revoked console:
// sign in with an operator token, see the held job, approve it with a reason, watch it run,
// acknowledge its manual step, download its evidence; then a read token sees a held job with
// no approve button and its POST is refused. A screenshot of each page goes to SHOTS.
//
//   node console.mjs URL        (env: OPERATOR_TOKEN, READ_TOKEN, HELD_JOB, OTHER_HELD_JOB,
//                                SHOTS, CHROMIUM [default /usr/bin/chromium])
// Prints one JSON line {"ok": true, "steps": [...]} and exits 0, or {"ok": false, "error"} and 1.

import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const base = process.argv[2];
const env = (k) => {
  const v = process.env[k];
  if (!v) { throw new Error(`expected the environment variable ${k}, found none`); }
  return v;
};
const steps = [];
const step = (s) => { steps.push(s); };

async function signIn(page, token) {
  await page.goto(`${base}/ui/jobs`);
  if (!page.url().endsWith("/ui/login")) { throw new Error(`expected a redirect to the sign-in page, found ${page.url()}`); }
  await page.fill("#token", token);
  await Promise.all([page.waitForURL(/\/ui\/jobs$/), page.click("#sign-in")]);
}

async function shot(page, name) {
  const file = path.join(process.env.SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  step(`screenshot ${file}`);
}

async function main() {
  if (!base) { throw new Error("usage: node console.mjs URL"); }
  const held = env("HELD_JOB");
  const otherHeld = env("OTHER_HELD_JOB");
  fs.mkdirSync(env("SHOTS"), { recursive: true });
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!fs.existsSync(executablePath)) {
    throw new Error(`expected chromium at ${executablePath}, found none: apt-get install chromium (scripts/test installs it)`);
  }
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
  const csp = [];
  try {
    // --- operator ---------------------------------------------------------------------------
    const ops = await browser.newContext({ acceptDownloads: true, viewport: { width: 1360, height: 900 } });
    const page = await ops.newPage();
    page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) { csp.push(m.text()); } });
    await page.goto(`${base}/ui/login`);
    await shot(page, "01-sign-in");
    await signIn(page, env("OPERATOR_TOKEN"));
    step("signed in as operator");
    await shot(page, "02-jobs");

    await page.goto(`${base}/ui/approvals`);
    const row = page.locator(`tr[data-job="${held}"]`);
    if (await row.count() !== 1) { throw new Error(`expected the held job ${held} on the approvals page`); }
    await shot(page, "03-approvals");
    // The reason is required: the browser refuses to send the form without one.
    await row.locator("button.btn-approve").click();
    if (!page.url().endsWith("/ui/approvals")) { throw new Error("an approval without a reason was sent"); }
    await row.locator("form[action$='/approve'] input[name=reason]").fill("ticket HR-42: confirmed with HR");
    await Promise.all([page.waitForURL(/\/ui\/approvals$/), row.locator("button.btn-approve").click()]);
    if (await page.locator(`tr[data-job="${held}"]`).count() !== 0) { throw new Error("the approved job is still on the approvals page"); }
    step("approved the held job");

    // Watch it run: the job page reloads itself (console.js) while an action runs or is due.
    let loads = 0;
    page.on("load", () => { loads += 1; });
    await page.goto(`${base}/ui/jobs/${encodeURIComponent(held)}`);
    const ack = page.locator("button.btn-ack");
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        if (await page.locator("h1 .s-failed").count() > 0) { throw new Error(`the job failed: ${await page.locator("#note").innerText().catch(() => "")}`); }
        // Contain and revoke done (the delete phase waits for the retention period), the
        // manual step waiting for a person.
        const running = await page.locator("#actions .s-running").count();
        const done = await page.locator("#actions .s-done").count();
        const left = await page.locator("#actions tr[data-action]").filter({ has: page.locator(".s-pending") }).filter({ hasNotText: "delete" }).count();
        if (done > 0 && running === 0 && left === 0 && await ack.count() > 0) { break; }
      } catch (e) {
        if (/the job failed/.test(String(e))) { throw e; }
        // the page was reloading under the query: look again
      }
      if (Date.now() > deadline) { throw new Error(`the job did not finish its actions: ${await page.locator("#actions").innerText().catch(() => "no actions table")}`); }
      await page.waitForTimeout(250);
    }
    // Once nothing is due the page stops reloading itself.
    if (await page.evaluate(() => document.body.hasAttribute("data-refresh"))) { throw new Error("the finished job's page still reloads itself"); }
    step(`watched the job run (the page reloaded itself ${loads - 1} times)`);
    await shot(page, "04-job-run");

    await page.goto(`${base}/ui/manual`);
    await shot(page, "05-manual-steps");
    const mine = page.locator(`#steps tr[data-job="${held}"] button.btn-ack`);
    if (await mine.count() !== 1) { throw new Error(`expected one step of job ${held} on the manual-steps page`); }
    const steps0 = await page.locator("#steps button.btn-ack").count();
    await Promise.all([page.waitForURL(/\/ui\/manual$/), mine.click()]);
    const steps1 = await page.locator("#steps button.btn-ack").count();
    if (steps1 !== steps0 - 1 || await mine.count() !== 0) { throw new Error(`expected ${steps0 - 1} steps after acknowledging the job's, found ${steps1}`); }
    step("acknowledged a manual step");

    await page.goto(`${base}/ui/jobs/${encodeURIComponent(held)}`);
    if (await page.locator("#actions .s-acknowledged").count() < 1) { throw new Error("the job page shows no acknowledged step"); }
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#evidence-md")]);
    const file = path.join(process.env.SHOTS, download.suggestedFilename());
    await download.saveAs(file);
    const md = fs.readFileSync(file, "utf8");
    if (!md.includes(held) || !md.includes("token:ops")) { throw new Error(`the evidence download lacks the job id or the acting token: ${md.slice(0, 400)}`); }
    step(`downloaded evidence ${download.suggestedFilename()} (${md.length} bytes)`);
    await shot(page, "06-job-evidence");

    await page.goto(`${base}/ui/connectors`);
    if (await page.locator("#connectors tr[data-instance]").count() < 1) { throw new Error("no connector listed"); }
    await shot(page, "07-connectors");
    await page.goto(`${base}/ui/jobs`);
    await shot(page, "08-jobs-after");
    await Promise.all([page.waitForURL(/\/ui\/login$/), page.click("#sign-out")]);
    await page.goto(`${base}/ui/jobs`);
    if (!page.url().endsWith("/ui/login")) { throw new Error("still signed in after signing out"); }
    step("signed out");

    // --- read token -------------------------------------------------------------------------
    const viewer = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const vp = await viewer.newPage();
    await signIn(vp, env("READ_TOKEN"));
    await vp.goto(`${base}/ui/approvals`);
    const vrow = vp.locator(`tr[data-job="${otherHeld}"]`);
    if (await vrow.count() !== 1) { throw new Error(`expected the held job ${otherHeld} on the viewer's approvals page`); }
    if (await vp.locator("button.btn-approve, button.btn-reject, button.btn-ack").count() !== 0) { throw new Error("a read token sees an approve, reject or acknowledge button"); }
    await shot(vp, "09-approvals-read-token");
    const csrf = await vp.locator("header input[name=csrf]").inputValue();
    const r = await vp.request.post(`${base}/ui/jobs/${encodeURIComponent(otherHeld)}/approve`, {
      form: { csrf, reason: "a viewer tries", back: "/ui/approvals" },
      headers: { origin: base },
      maxRedirects: 0,
    });
    if (r.status() !== 403) { throw new Error(`expected a read token's approval refused with 403, found ${r.status()}`); }
    step("a read token has no approve button and its POST is refused (403)");
    if (csp.length) { throw new Error(`the page broke its Content-Security-Policy: ${csp.join("; ")}`); }
  } finally {
    await browser.close();
  }
}

main().then(
  () => { console.log(JSON.stringify({ ok: true, steps })); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e), steps })); process.exit(1); },
);
