// Validate GLB files with Khronos's glTF-Validator (npm gltf-validator); prints one JSON line per file:
// {"file", "errors", "warnings", "messages": [{code, message, pointer, severity}]}.
import { readFileSync } from "node:fs";
import validator from "gltf-validator";

for (const file of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(readFileSync(file)), { maxIssues: 50 });
  const issues = report.issues;
  console.log(JSON.stringify({
    file,
    errors: issues.numErrors,
    warnings: issues.numWarnings,
    messages: issues.messages.map(({ code, message, pointer, severity }) => ({ code, message, pointer, severity })),
  }));
}
