// Validate docs/asyncapi.yaml with the official parser; exit 1 on any error-level diagnostic.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = new URL("../asyncapi.yaml", import.meta.url);
const { document, diagnostics } = await new Parser().parse(readFileSync(path, "utf8"));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of errors) console.error(`${d.path.join(".")}: ${d.message}`);
if (!document || errors.length) process.exit(1);
console.log(`asyncapi.yaml is valid: ${document.channels().length} channel(s), ${document.allMessages().length} messages`);
