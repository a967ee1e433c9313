// Compares one run of the MCP conformance suite with expected-failures.txt.
//
// usage: node evaluate.mjs <results-dir> <expected-failures.txt> <scenario>...
//
// <results-dir>/<scenario>/ holds what run.sh left for each scenario: the
// suite's checks.json (in a server-<scenario>-<timestamp>/ folder), the CLI's
// output (cli.log) and its exit code (exit-code). A scenario fails when any of
// its checks has status FAILURE or WARNING (the suite's own baseline rule), or
// when it left no checks.json at all (crash, timeout, not run).
//
// expected-failures.txt: one entry a line, `# reason` after it; blank lines and
// lines that are only a comment are skipped. An entry is either
//   <scenario>             the whole scenario is expected to fail, or
//   <scenario>:<check-id>  only that check is expected to be FAILURE/WARNING;
//                          every other check of the scenario must pass.
// An entry that no longer fails is reported as an unexpected pass.
//
// Prints one line per scenario, then the closing line `N passed, M failed`
// (N: scenarios that passed, M: unexpected failures + unexpected passes +
// entries naming unknown scenarios). Exit code 0 iff M == 0.

import fs from 'node:fs';
import path from 'node:path';

const [resultsDir, expectedFile, ...scenarios] = process.argv.slice(2);
if (!resultsDir || !expectedFile || scenarios.length === 0) {
  console.error('usage: node evaluate.mjs <results-dir> <expected-failures.txt> <scenario>...');
  process.exit(2);
}

// ---- expected failures -----------------------------------------------------
// Entries are checked against every scenario the suite knows
// (CONFORMANCE_ALL_SCENARIOS, space-separated; default: the ones run), so a
// subset run does not flag entries for scenarios it skipped.
const known = (process.env.CONFORMANCE_ALL_SCENARIOS || scenarios.join(' ')).split(/\s+/).filter(Boolean);
const wholeScenario = new Map(); // scenario -> reason
const perCheck = new Map(); // scenario -> Map(checkId -> reason)
const configProblems = [];
fs.readFileSync(expectedFile, 'utf8')
  .split('\n')
  .forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const entry = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    const reason = hash >= 0 ? raw.slice(hash + 1).trim() : '';
    if (!entry) return;
    const where = `${path.basename(expectedFile)}:${i + 1}`;
    if (!reason) configProblems.push(`${where}: entry '${entry}' has no '# reason'`);
    const [scenario, check] = entry.split(':', 2);
    if (!known.includes(scenario)) {
      configProblems.push(`${where}: '${scenario}' is not a scenario of this suite version`);
      return;
    }
    if (check) {
      if (!perCheck.has(scenario)) perCheck.set(scenario, new Map());
      perCheck.get(scenario).set(check, reason);
    } else {
      wholeScenario.set(scenario, reason);
    }
  });

// ---- results -----------------------------------------------------------------
function findChecks(dir) {
  if (!fs.existsSync(dir)) return null;
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) {
      const found = findChecks(p);
      if (found) return found;
    } else if (ent.name === 'checks.json') {
      return p;
    }
  }
  return null;
}

function readText(p) {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return '';
  }
}

const oneLine = (s, n = 240) => {
  const t = String(s ?? '').replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n)}…` : t;
};

let passed = 0;
let expected = 0;
const unexpectedFailures = [];
const unexpectedPasses = [];
const lines = [];

for (const scenario of scenarios) {
  const dir = path.join(resultsDir, scenario);
  const checksPath = findChecks(dir);
  let bad; // [{id, status, msg}]
  let total = 0;
  if (!checksPath) {
    const code = readText(path.join(dir, 'exit-code')) || 'not run';
    const tail = readText(path.join(dir, 'cli.log')).split('\n').slice(-3).join(' | ');
    bad = [{ id: '(no results)', status: 'FAILURE', msg: `no checks.json; exit code ${code}${tail ? `; ${tail}` : ''}` }];
  } else {
    const checks = JSON.parse(fs.readFileSync(checksPath, 'utf8'));
    total = checks.filter((c) => c.status === 'SUCCESS' || c.status === 'FAILURE' || c.status === 'WARNING').length;
    bad = checks
      .filter((c) => c.status === 'FAILURE' || c.status === 'WARNING')
      .map((c) => ({ id: c.id, status: c.status, msg: c.errorMessage }));
  }

  if (wholeScenario.has(scenario)) {
    if (bad.length === 0) {
      unexpectedPasses.push(scenario);
      lines.push(`XPASS  ${scenario}: listed in expected-failures.txt but passed - remove the entry`);
    } else {
      expected++;
      lines.push(`xfail  ${scenario}  # ${wholeScenario.get(scenario)}`);
    }
    continue;
  }

  const knownBad = perCheck.get(scenario) ?? new Map();
  const badIds = new Set(bad.map((b) => b.id));
  const unexpectedBad = bad.filter((b) => !knownBad.has(b.id));
  const stale = [...knownBad.keys()].filter((id) => !badIds.has(id));
  if (unexpectedBad.length > 0) {
    unexpectedFailures.push(scenario);
    lines.push(`FAIL   ${scenario}`);
    for (const b of unexpectedBad) lines.push(`         ${b.status} ${b.id}: ${oneLine(b.msg)}`);
  } else if (stale.length > 0) {
    unexpectedPasses.push(scenario);
    lines.push(`XPASS  ${scenario}: check(s) ${stale.join(', ')} listed in expected-failures.txt but passed - remove the entry`);
  } else {
    passed++;
    const note = bad.length ? ` (${total - bad.length}/${total} checks ok; expected: ${bad.map((b) => `${b.id} ${b.status}`).join(', ')})` : ` (${total}/${total} checks ok)`;
    lines.push(`pass   ${scenario}${note}`);
  }
}

for (const l of lines) console.log(l);
console.log('');
for (const p of configProblems) console.log(`CONFIG ${p}`);
console.log(
  `scenarios: ${scenarios.length}; passed: ${passed}; expected failures: ${expected}; ` +
    `unexpected failures: ${unexpectedFailures.length}; unexpected passes: ${unexpectedPasses.length}; ` +
    `expected-failures.txt problems: ${configProblems.length}`,
);
const failed = unexpectedFailures.length + unexpectedPasses.length + configProblems.length;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
