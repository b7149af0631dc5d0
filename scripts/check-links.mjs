// Every link in the README (and docs/protocol.md, demo/README.md) resolves inside the repository: a
// relative path that exists, or an anchor that names a heading of the target file. Run by
// `make lint`. External links are not followed (CI has no internet); there should be none.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const files = ['README.md', 'docs/protocol.md', 'demo/README.md'].filter(existsSync);
const slug = (heading) =>
  heading.trim().toLowerCase().replace(/[`*_]/g, '').replace(/[^\p{L}\p{N} -]/gu, '').replace(/ /g, '-');
const anchorsOf = (file) => {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.*)$/gm)].map((m) => slug(m[1])));
};
let bad = 0;
for (const file of files) {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^(https?:|mailto:)/.test(target)) {
      if (!/^https?:\/\/(127\.0\.0\.1|localhost)/.test(target)) {
        console.error(`${file}: external link ${target}`);
        bad += 1;
      }
      continue;
    }
    const [path, anchor] = target.split('#');
    const resolved = path ? resolve(dirname(file), path) : resolve(file);
    if (path && !existsSync(resolved)) {
      console.error(`${file}: ${target} does not exist`);
      bad += 1;
    } else if (anchor && resolved.endsWith('.md') && !anchorsOf(resolved).has(anchor)) {
      console.error(`${file}: ${target}: no heading #${anchor}`);
      bad += 1;
    }
  }
  for (const [, target] of text.matchAll(/<(https?:\/\/[^>]+)>/g)) {
    if (!/^https?:\/\/(127\.0\.0\.1|localhost)/.test(target)) {
      console.error(`${file}: external link ${target}`);
      bad += 1;
    }
  }
}
if (bad) process.exit(1);
console.log(`links: ${files.join(', ')}: all resolve`);
