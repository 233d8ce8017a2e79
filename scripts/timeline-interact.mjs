// Hover and click in a timeline page in headless Chromium: a hover over a mark shows its
// tooltip, a click pins its details, the zoom redraws, and nothing is fetched. Optional; it
// needs playwright-core, found from the current directory (not committed):
//   cd "$(mktemp -d)" && npm install playwright-core && node REPO/scripts/timeline-interact.mjs PAGE.html
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const { chromium } = createRequire(path.join(process.cwd(), 'noop.js'))('playwright-core');

const page_path = process.argv[2];
if (!page_path) {
  console.error('usage: node scripts/timeline-interact.mjs PAGE.html');
  process.exit(2);
}
const fail = (why) => { console.error('error: ' + why); process.exit(1); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Nothing may leave the machine: any request but the file itself fails the check.
  page.on('request', (r) => { if (!r.url().startsWith('file:')) { errors.push('request to ' + r.url()); } });
  await page.goto(pathToFileURL(path.resolve(page_path)).href);
  if (await page.getAttribute('body', 'data-status') !== 'ok') { fail('the page did not render'); }

  // Hover: the tooltip shows the mark's step and outcome.
  // (The last drawn is on top; in a crowded run another may still cover part of it: force.)
  const mark = page.locator('g.mk[data-k^="m"]').last();
  await mark.hover({ force: true });
  const tip = page.locator('#tip');
  if (!(await tip.isVisible())) { fail('no tooltip on hover'); }
  const tipText = await tip.innerText();
  if (!/step \d+/.test(tipText) || !tipText.includes('→')) { fail('the tooltip lacks the step and its outcome: ' + tipText); }

  // Click: the details panel pins that mark, with what its step caused.
  await mark.click({ force: true });
  const key = await page.getAttribute('body', 'data-pinned');
  if (!key || !key.startsWith('m')) { fail('the click pinned no mark'); }
  const details = await page.locator('#details').innerText();
  if (!details.includes('step ')) { fail('the pinned details lack the step: ' + details); }

  // Marks at one step: one glyph per lane and kind (repeats counted), each within its
  // step's width, at the zoom the page opened with and at the widest.
  const placement = async () => page.evaluate(() => {
    const stepX = (i) => Number(document.querySelector('.st[data-k="s' + i + '"]').getAttribute('x'));
    const px = stepX(1) - stepX(0);
    const seen = new Set();
    const bad = [];
    document.querySelectorAll('g.mk[data-step]').forEach((g) => {
      const step = Number(g.dataset.step), x = Number(g.dataset.x);
      const key = g.dataset.lane + '@' + step + ':' + g.dataset.kind;
      if (seen.has(key)) { bad.push('two glyphs for ' + key); }
      seen.add(key);
      if (x < stepX(step) - 0.01 || x > stepX(step) + px + 0.01) { bad.push(key + ' drawn at ' + x + ', outside its step'); }
    });
    return bad;
  });
  for (const at of ['opened', 'widest']) {
    if (at === 'widest') { await page.locator('#zoom').fill('100'); }
    const bad = await placement();
    if (bad.length) { fail('marks misplaced (' + at + '): ' + bad.slice(0, 5).join('; ')); }
  }

  // Zoom: the drawing is redrawn wider (from the narrowest: a short run opens at the widest).
  await page.locator('#zoom').fill('0');
  const before = await page.locator('#scroll svg').getAttribute('width');
  await page.locator('#zoom').fill('100');
  const after = await page.locator('#scroll svg').getAttribute('width');
  if (!(Number(after) > Number(before))) { fail(`zoom did not widen the drawing (${before} → ${after})`); }

  if (errors.length) { fail(errors.join('; ')); }
  console.log(`hover, click and zoom work: tooltip "${tipText.split('\n')[0]}", pinned ${key}, width ${before} → ${after}`);
} finally {
  await browser.close();
}
