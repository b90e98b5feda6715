// One version everywhere: package.json, deno.json and ffi/load.ts's PACKAGE_VERSION (which names the
// library cache); and CHANGELOG.md has a section for it. Exits non-zero, naming the files that differ.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const read = (file) => readFileSync(join(root, file), "utf8");
const versions = {
  "package.json": JSON.parse(read("package.json")).version,
  "deno.json": JSON.parse(read("deno.json")).version,
  "ffi/load.ts": read("ffi/load.ts").match(/PACKAGE_VERSION = "([^"]+)"/)?.[1],
};
const distinct = new Set(Object.values(versions));
if (distinct.size !== 1) {
  console.error(`versions differ: ${JSON.stringify(versions)}`);
  process.exit(1);
}
const [version] = distinct;
if (!read("CHANGELOG.md").includes(`## ${version}`)) {
  console.error(`CHANGELOG.md has no "## ${version}" section`);
  process.exit(1);
}
console.log(`version ${version} everywhere, with a CHANGELOG section`);
