// Reference verifier: sigstore-js (@sigstore/verify) checks a bundle against a custom trusted root and identity.
//
// Usage: node verify.mjs --bundle B --trusted-root R --identity ID --issuer ISS [--artifact FILE]
// (no --artifact: the bundle holds a DSSE envelope). Prints `OK <signer SAN>` and exits 0, or the
// error and exits 1. Our bundles must pass here exactly as they pass our own verifier.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];

try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(args.bundle, 'utf8')));
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(args['trusted-root'], 'utf8')));
  const artifact = args.artifact ? fs.readFileSync(args.artifact) : undefined;
  const entity = toSignedEntity(bundle, artifact);
  // sigstore-js matches the SAN as a regular expression: anchor and escape it for an exact match.
  const exact = `^${args.identity.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`;
  const signer = new Verifier(toTrustMaterial(root)).verify(entity, {
    subjectAlternativeName: exact,
    extensions: { issuer: args.issuer },
  });
  process.stdout.write(`OK ${signer.identity?.subjectAlternativeName}\n`);
} catch (e) {
  process.stdout.write(`FAIL ${e.code || ''} ${e.message}${e.cause ? ` (cause: ${e.cause.message})` : ''}\n`);
  process.exit(1);
}
