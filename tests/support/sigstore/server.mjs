// Loopback Sigstore for tests: @sigstore/mock's Fulcio and Rekor, and an RFC 3161 timestamp
// authority (`openssl ts -reply`), behind one HTTP server, smoothed to act like the real services.
//
// Usage: node server.mjs TRUSTED_ROOT_OUT [--other-root PATH] [--ca-clock-skew SECONDS]
//                                         [--request-token TOKEN] [--claims JSON]
//                                         [--signing-config PATH]
//
// Prints one JSON line on stdout once listening:
//   {"url", "fulcio_url", "rekor_url", "tsa_url", "token_request_url", "token_request_token",
//    "trusted_root"}
// The trusted root lists the TSA's chain under `timestampAuthorities`; the signing config (v0.2)
// lists this Fulcio, this Rekor (v1), a Rekor v2 log under /v2log (Ed25519 checkpoints) and this TSA.
// and serves until stdin closes (so a crashed test never leaves it behind) or it is killed.
//
// @sigstore/mock ships request handlers only. Where the mock differs from the real services in ways
// a client can observe, this wrapper makes it behave like the real one (see `smooth*` below):
//   Fulcio: the token may come as `Authorization: Bearer` (the mock reads only the body); the
//           proof of possession is checked (the mock ignores it); the audience must be `sigstore`
//           and the token unexpired; the SAN for GitHub tokens is
//           `https://github.com/{job_workflow_ref}` as real Fulcio makes it (the mock uses `sub`).
//   Rekor:  a dsse entry is verified and canonicalised to {envelopeHash, payloadHash, signatures}
//           (the mock stores the proposed entry as submitted); certificates are stored as
//           canonical PEM (LF line ends), as Rekor re-encodes them; every entry goes into a real,
//           growing RFC 6962 tree so inclusion proofs have audit paths (the mock always answers
//           with a one-leaf tree and no hashes), and the checkpoint is re-signed for that tree
//           with the same log key, in the mock's (and Rekor's) signed-note format.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const mock = require('@sigstore/mock');

const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

function parseArgs(argv) {
  const out = { trustedRoot: argv[0], otherRoot: null, skew: 0, requestToken: null, claims: {}, signingConfig: null };
  for (let i = 1; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--other-root') out.otherRoot = value;
    else if (flag === '--ca-clock-skew') out.skew = Number(value);
    else if (flag === '--request-token') out.requestToken = value;
    else if (flag === '--claims') out.claims = JSON.parse(value);
    else if (flag === '--signing-config') out.signingConfig = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!out.trustedRoot) throw new Error('usage: server.mjs TRUSTED_ROOT_OUT [flags]');
  return out;
}

const b64 = (buf) => Buffer.from(buf).toString('base64');
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sha256 = (...parts) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const newKeyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spkiDer = (publicKey) => publicKey.export({ format: 'der', type: 'spki' });

// --- one Sigstore instance: CA, CT log, transparency log --------------------------------------

async function makeInstance(baseURL, skewSeconds) {
  const caKeys = newKeyPair();
  const ctKeys = newKeyPair();
  const tlogKeys = newKeyPair();
  // A fixed clock only when skewed: the mock reads it once for the precertificate and once for
  // the final certificate, so a clock that moved between the two would break the SCT.
  const clock = skewSeconds ? new Date(Date.now() + skewSeconds * 1000) : undefined;
  const ctlog = await mock.initializeCTLog(ctKeys, clock);
  const ca = await mock.initializeCA(caKeys, ctlog, clock);
  const tlog = await mock.initializeTLog(baseURL, tlogKeys);
  return { ca, ctlog, tlog, tlogKeys };
}

// --- TSA: a root CA and a timestamping leaf made with openssl; `openssl ts -reply` answers ---------

function openssl(args, input) {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function makeTsa(dir) {
  const file = (name) => path.join(dir, name);
  fs.writeFileSync(
    file('ext.cnf'),
    ['[root]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash', '[leaf]', 'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature', 'extendedKeyUsage = critical,timeStamping',
      'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid', ''].join('\n'),
  );
  const key = (name) => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file(name)]);
  key('root.key');
  key('tsa.key');
  openssl(['req', '-new', '-x509', '-key', file('root.key'), '-subj', '/O=sigstore.mock/CN=tsa root',
    '-days', '2', '-config', file('ext.cnf'), '-extensions', 'root', '-out', file('root.pem')]);
  openssl(['req', '-new', '-key', file('tsa.key'), '-subj', '/O=sigstore.mock/CN=tsa signing', '-out', file('tsa.csr')]);
  openssl(['x509', '-req', '-in', file('tsa.csr'), '-CA', file('root.pem'), '-CAkey', file('root.key'),
    '-set_serial', '2', '-days', '2', '-extfile', file('ext.cnf'), '-extensions', 'leaf', '-out', file('tsa.pem')]);
  fs.writeFileSync(file('serial'), '01\n');
  // Only the signing certificate goes into a reply (when asked for): with the root as well,
  // openssl writes the SET OF certificates unsorted, which strict DER readers refuse; the
  // verifier has the chain from the trusted root anyway.
  fs.writeFileSync(
    file('ts.cnf'),
    ['[tsa]', 'default_tsa = mock', '[mock]', `serial = ${file('serial')}`, `signer_cert = ${file('tsa.pem')}`,
      `signer_key = ${file('tsa.key')}`, 'signer_digest = sha256',
      'default_policy = 1.3.6.1.4.1.57264.2', 'digests = sha256, sha384, sha512', 'accuracy = secs:1',
      'ordering = no', 'tsa_name = no', 'ess_cert_id_chain = no', 'ess_cert_id_alg = sha256', ''].join('\n'),
  );
  const der = (name) => new crypto.X509Certificate(fs.readFileSync(file(name))).raw;
  return {
    chain: [der('tsa.pem'), der('root.pem')],
    // RFC 3161 over HTTP: a DER TimeStampReq in, a DER TimeStampResp out.
    reply(query) {
      fs.writeFileSync(file('query.tsq'), query);
      return openssl(['ts', '-reply', '-config', file('ts.cnf'), '-queryfile', file('query.tsq')]);
    },
  };
}

function trustedRootJson(instance, baseURL, validFrom, tsa, v2) {
  const start = validFrom.toISOString();
  const tlogKey = spkiDer(instance.tlogKeys.publicKey);
  const logKey = (rawBytes) => ({
    rawBytes: b64(rawBytes),
    keyDetails: 'PKIX_ECDSA_P256_SHA_256',
    validFor: { start },
  });
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl: baseURL,
        hashAlgorithm: 'SHA2_256',
        publicKey: logKey(tlogKey),
        logId: { keyId: b64(sha256(tlogKey)) },
      },
      ...(v2
        ? [
            {
              baseUrl: v2.url,
              hashAlgorithm: 'SHA2_256',
              publicKey: {
                rawBytes: b64(spkiDer(v2.keys.publicKey)),
                keyDetails: 'PKIX_ED25519',
                validFor: { start },
              },
              logId: { keyId: b64(v2.keyId) },
            },
          ]
        : []),
    ],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: baseURL,
        certChain: { certificates: [{ rawBytes: b64(instance.ca.rootCertificate) }] },
        validFor: { start },
      },
    ],
    ctlogs: [
      {
        baseUrl: baseURL,
        hashAlgorithm: 'SHA2_256',
        publicKey: logKey(instance.ctlog.publicKey),
        logId: { keyId: b64(instance.ctlog.logID) },
      },
    ],
    timestampAuthorities: tsa
      ? [
          {
            subject: { organization: 'sigstore.mock', commonName: 'tsa' },
            uri: `${baseURL}/api/v1/timestamp`,
            certChain: { certificates: tsa.chain.map((c) => ({ rawBytes: b64(c) })) },
            validFor: { start },
          },
        ]
      : [],
  };
}

function signingConfigJson(baseURL, validFrom, v2url) {
  const service = (url, majorApiVersion) => ({
    url,
    majorApiVersion,
    validFor: { start: validFrom.toISOString() },
    operator: 'sigstore.mock',
  });
  return {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [service(baseURL, 1)],
    oidcUrls: [],
    rekorTlogUrls: [service(baseURL, 1), service(v2url, 2)],
    tsaUrls: [service(`${baseURL}/api/v1/timestamp`, 1)],
    rekorTlogConfig: { selector: 'ANY' },
    tsaConfig: { selector: 'ANY' },
  };
}

// --- JWTs (unsigned: the mock decodes but never verifies them) ---------------------------------

function decodeJwt(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new HttpError(401, 'identity token is not a JWT');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

function encodeUnsignedJwt(claims) {
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.`;
}

function githubClaims(audience, overrides) {
  const now = Math.floor(Date.now() / 1000);
  const workflowRef = 'o/r/.github/workflows/release.yml@refs/tags/v1.0.0';
  return {
    iss: GITHUB_ISSUER,
    sub: 'repo:o/r:ref:refs/tags/v1.0.0',
    aud: audience,
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: crypto.randomUUID(),
    repository: 'o/r',
    repository_id: '1',
    repository_owner: 'o',
    repository_owner_id: '2',
    repository_visibility: 'public',
    ref: 'refs/tags/v1.0.0',
    ref_type: 'tag',
    sha: 'a'.repeat(40),
    event_name: 'push',
    run_id: '3',
    run_attempt: '1',
    runner_environment: 'github-hosted',
    workflow: 'release',
    workflow_ref: workflowRef,
    workflow_sha: 'a'.repeat(40),
    job_workflow_ref: workflowRef,
    job_workflow_sha: 'a'.repeat(40),
    ...overrides,
  };
}

// --- Fulcio ---------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// What real Fulcio puts in the SAN for this token.
function fulcioSubject(claims) {
  if (claims.iss === GITHUB_ISSUER) return `https://github.com/${claims.job_workflow_ref}`;
  if (claims.email) return claims.email;
  return claims.sub;
}

// The proof-of-possession challenge: the email for email identities, else `sub`.
function fulcioChallenge(claims) {
  return claims.email && claims.email_verified ? claims.email : claims.sub;
}

function smoothFulcioRequest(req, body) {
  const json = JSON.parse(body);
  const auth = req.headers.authorization || '';
  const bearer = /^bearer\s+(\S+)$/i.exec(auth)?.[1];
  const token = bearer || json.credentials?.oidcIdentityToken;
  if (!token) throw new HttpError(401, 'no identity token (Authorization: Bearer or credentials)');
  const claims = decodeJwt(token);
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes('sigstore')) throw new HttpError(401, 'token audience is not sigstore');
  if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) {
    throw new HttpError(401, 'token expired');
  }
  const request = json.publicKeyRequest;
  if (!request?.publicKey?.content || !request.proofOfPossession) {
    throw new HttpError(400, 'publicKeyRequest.publicKey.content and proofOfPossession are required');
  }
  let key;
  try {
    key = crypto.createPublicKey(request.publicKey.content);
  } catch {
    throw new HttpError(400, 'publicKey.content is not a PEM public key');
  }
  const challenge = Buffer.from(fulcioChallenge(claims), 'utf8');
  const proof = Buffer.from(request.proofOfPossession, 'base64');
  if (!crypto.verify('sha256', challenge, key, proof)) {
    throw new HttpError(400, 'proof of possession does not verify');
  }
  const extended = { ...claims, fulcio_san: fulcioSubject(claims) };
  return JSON.stringify({ ...json, credentials: { oidcIdentityToken: encodeUnsignedJwt(extended) } });
}

// --- Rekor ----------------------------------------------------------------------------------

const pae = (type, payload) =>
  Buffer.concat([
    Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `),
    payload,
  ]);

function certificateKey(b64Pem) {
  return certificate(b64Pem).publicKey;
}

function certificate(b64Pem) {
  try {
    return new crypto.X509Certificate(Buffer.from(b64Pem, 'base64'));
  } catch {
    throw new HttpError(400, 'verifier is not a base64 PEM certificate');
  }
}

// Rekor stores a verifier in its canonical form (Go's pem.Encode: LF line ends, 64 columns),
// whatever line ends the client sent (sigstore-rust sends CRLF).
const canonicalPem = (b64Pem) => b64(Buffer.from(certificate(b64Pem).toString()));

// Real Rekor keeps only these fields of a proposed entry (and rejects what it cannot check).
function smoothRekorRequest(body) {
  const entry = JSON.parse(body);
  if (entry.apiVersion !== '0.0.1') throw new HttpError(400, `unsupported apiVersion ${entry.apiVersion}`);
  if (entry.kind === 'hashedrekord') {
    const { data, signature } = entry.spec ?? {};
    if (data?.hash?.algorithm !== 'sha256' || !/^[0-9a-f]{64}$/.test(data?.hash?.value ?? '')) {
      throw new HttpError(400, 'spec.data.hash must be a sha256 hex digest');
    }
    certificateKey(signature?.publicKey?.content ?? '');
    // Node cannot verify ECDSA over a bare digest, so unlike Rekor the signature itself is not
    // checked here; the client-side verifier checks it.
    return JSON.stringify({
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: data.hash.value } },
        signature: { content: signature.content, publicKey: { content: canonicalPem(signature.publicKey.content) } },
      },
    });
  }
  if (entry.kind === 'dsse') {
    const proposed = entry.spec?.proposedContent;
    if (typeof proposed?.envelope !== 'string' || !proposed.verifiers?.length) {
      throw new HttpError(400, 'dsse needs proposedContent.envelope (a string) and verifiers');
    }
    const envelope = JSON.parse(proposed.envelope);
    const payload = Buffer.from(envelope.payload, 'base64');
    const message = pae(envelope.payloadType, payload);
    if (!envelope.signatures?.length) throw new HttpError(400, 'envelope has no signatures');
    const signatures = envelope.signatures.map(({ sig }) => {
      const verifier = proposed.verifiers.find((v) =>
        crypto.verify('sha256', message, certificateKey(v), Buffer.from(sig, 'base64')),
      );
      if (!verifier) throw new HttpError(400, 'all signatures must have a key that verifies it');
      return { signature: sig, verifier: canonicalPem(verifier) };
    });
    signatures.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
    return JSON.stringify({
      apiVersion: '0.0.1',
      kind: 'dsse',
      spec: {
        envelopeHash: { algorithm: 'sha256', value: sha256(proposed.envelope).toString('hex') },
        payloadHash: { algorithm: 'sha256', value: sha256(payload).toString('hex') },
        signatures,
      },
    });
  }
  throw new HttpError(400, `unsupported kind ${entry.kind}`);
}

// RFC 6962 Merkle tree over every entry this server has logged, with filler leaves around them.
// Rekor v1 signs its checkpoints with ECDSA and a `Timestamp:` line; Rekor v2 (`ed25519`) with
// Ed25519 as a plain C2SP signed note.
class MerkleLog {
  constructor(origin, name, privateKey, keyId, ed25519 = false) {
    Object.assign(this, { origin, name, privateKey, keyId, ed25519, leaves: [] });
    this.addFillers(5);
  }
  addFillers(n) {
    for (let i = 0; i < n; i++) this.leaves.push(sha256(Buffer.from([0]), crypto.randomBytes(32)));
  }
  static root(leaves) {
    if (leaves.length === 0) return sha256(Buffer.alloc(0));
    if (leaves.length === 1) return leaves[0];
    const k = MerkleLog.split(leaves.length);
    return sha256(Buffer.from([1]), MerkleLog.root(leaves.slice(0, k)), MerkleLog.root(leaves.slice(k)));
  }
  // Largest power of two strictly below n.
  static split(n) {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }
  static path(m, leaves) {
    if (leaves.length <= 1) return [];
    const k = MerkleLog.split(leaves.length);
    return m < k
      ? [...MerkleLog.path(m, leaves.slice(0, k)), MerkleLog.root(leaves.slice(k))]
      : [...MerkleLog.path(m - k, leaves.slice(k)), MerkleLog.root(leaves.slice(0, k))];
  }
  append(body, integratedTime) {
    const index = this.leaves.length;
    this.leaves.push(sha256(Buffer.from([0]), body));
    this.addFillers(2);
    const leaves = this.leaves.slice();
    const rootHash = MerkleLog.root(leaves);
    const lines = [this.origin, `${leaves.length}`, b64(rootHash)];
    if (!this.ed25519) lines.push(`Timestamp: ${integratedTime * 1e9}`);
    const note = [...lines, ''].join('\n');
    const signature = crypto.sign(this.ed25519 ? null : 'sha256', Buffer.from(note), this.privateKey);
    const hintAndSig = Buffer.concat([this.keyId.subarray(0, 4), signature]);
    return {
      logIndex: index,
      treeSize: leaves.length,
      rootHash: rootHash.toString('hex'),
      hashes: MerkleLog.path(index, leaves).map((h) => h.toString('hex')),
      checkpoint: `${note}\n\u2014 ${this.name} ${b64(hintAndSig)}\n`,
    };
  }
}

function smoothRekorResponse(response, merkle) {
  const entries = JSON.parse(response);
  for (const entry of Object.values(entries)) {
    entry.verification.inclusionProof = merkle.append(Buffer.from(entry.body, 'base64'), entry.integratedTime);
  }
  return JSON.stringify(entries);
}

// --- Rekor v2 -------------------------------------------------------------------------------

// A hashedrekord 0.0.2 request becomes the entry body Rekor v2 logs (JCS: sorted keys), after
// the checks Rekor v2 makes on its shape.
function rekorV2Body(body) {
  const request = JSON.parse(body).hashedRekordRequestV002;
  const verifier = request?.signature?.verifier;
  if (!request?.digest || !request.signature?.content || !verifier?.keyDetails) {
    throw new HttpError(400, 'hashedRekordRequestV002 needs digest, signature.content and signature.verifier');
  }
  if (verifier.x509Certificate) {
    try {
      new crypto.X509Certificate(Buffer.from(verifier.x509Certificate.rawBytes, 'base64'));
    } catch {
      throw new HttpError(400, 'verifier.x509Certificate.rawBytes is not a certificate');
    }
  }
  // As for v1, Node cannot check ECDSA over a bare digest: the client-side verifiers do.
  const sorted = (v) =>
    Array.isArray(v)
      ? v.map(sorted)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]))
        : v;
  return JSON.stringify(
    sorted({
      apiVersion: '0.0.2',
      kind: 'hashedrekord',
      spec: {
        hashedRekordV002: {
          data: { algorithm: 'SHA2_256', digest: request.digest },
          signature: { content: request.signature.content, verifier },
        },
      },
    }),
  );
}

// The TransparencyLogEntry Rekor v2 answers: no integrated time, no promise, a proof whose
// checkpoint is the only signed thing.
function rekorV2Entry(body, merkle) {
  const proof = merkle.append(Buffer.from(body), 0);
  return JSON.stringify({
    logIndex: `${proof.logIndex}`,
    logId: { keyId: b64(merkle.keyId) },
    kindVersion: { kind: 'hashedrekord', version: '0.0.2' },
    inclusionProof: {
      logIndex: `${proof.logIndex}`,
      rootHash: b64(Buffer.from(proof.rootHash, 'hex')),
      treeSize: `${proof.treeSize}`,
      hashes: proof.hashes.map((h) => b64(Buffer.from(h, 'hex'))),
      checkpoint: { envelope: proof.checkpoint },
    },
    canonicalizedBody: b64(Buffer.from(body)),
  });
}

// C2SP signed-note key ID of an Ed25519 key: SHA-256(name || "\n" || 0x01 || raw key).
function noteKeyId(name, publicKey) {
  const raw = spkiDer(publicKey).subarray(-32);
  return sha256(Buffer.from(`${name}\n`), Buffer.from([1]), raw);
}

// --- HTTP -----------------------------------------------------------------------------------

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const requestToken = args.requestToken || crypto.randomBytes(16).toString('hex');
  const routes = {};
  const server = http.createServer(async (req, res) => {
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'Content-Type': type });
      res.end(body);
    };
    try {
      const url = new URL(req.url, 'http://localhost');
      const route = routes[`${req.method} ${url.pathname}`];
      if (!route) return send(404, JSON.stringify({ message: `no route ${req.method} ${url.pathname}` }));
      const raw = await readBody(req);
      const body = req.headers['content-type'] === 'application/timestamp-query' ? raw : raw.toString('utf8');
      const { status, body: answer, type } = await route(req, url, body);
      send(status, answer, type);
      return;
    } catch (e) {
      const status = e instanceof HttpError ? e.status : e instanceof SyntaxError ? 400 : 500;
      send(status, JSON.stringify({ code: status, message: e.message }));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseURL = `http://127.0.0.1:${server.address().port}`;
  const host = new URL(baseURL).host;

  const instance = await makeInstance(baseURL, args.skew);
  const validFrom = new Date(Date.now() + Math.min(0, args.skew) * 1000 - 60_000);
  // Beside the trusted root: the test's temporary directory, removed with it.
  const tsaDir = fs.mkdtempSync(path.join(path.dirname(path.resolve(args.trustedRoot)), 'tsa-'));
  const tsa = makeTsa(tsaDir);
  // Rekor v2 under its own base URL, with its own Ed25519 key, as a separate log.
  const v2url = `${baseURL}/v2log`;
  const v2name = `${host}/v2log`;
  const v2keys = crypto.generateKeyPairSync('ed25519');
  const v2 = { url: v2url, keys: v2keys, keyId: noteKeyId(v2name, v2keys.publicKey) };
  const merkleV2 = new MerkleLog(v2name, v2name, v2keys.privateKey, v2.keyId, true);
  fs.writeFileSync(args.trustedRoot, JSON.stringify(trustedRootJson(instance, baseURL, validFrom, tsa, v2), null, 2));
  if (args.signingConfig) {
    fs.writeFileSync(args.signingConfig, JSON.stringify(signingConfigJson(baseURL, validFrom, v2url), null, 2));
  }
  if (args.otherRoot) {
    // Same names and URLs, different keys: what a verifier holding the wrong root would see.
    const other = await makeInstance(baseURL, 0);
    const otherTsa = makeTsa(fs.mkdtempSync(path.join(tsaDir, 'other-')));
    const otherKeys = crypto.generateKeyPairSync('ed25519');
    const otherV2 = { url: v2url, keys: otherKeys, keyId: noteKeyId(v2name, otherKeys.publicKey) };
    fs.writeFileSync(args.otherRoot, JSON.stringify(trustedRootJson(other, baseURL, validFrom, otherTsa, otherV2), null, 2));
  }

  const fulcio = mock.fulcioHandler(instance.ca, { strict: true, subjectClaim: 'fulcio_san' });
  const rekor = mock.rekorHandler(instance.tlog, { strict: true });
  const tlogKeyId = sha256(spkiDer(instance.tlogKeys.publicKey));
  const treeId = crypto.randomInt(2 ** 47);
  const merkle = new MerkleLog(`${host} - ${treeId}`, host, instance.tlogKeys.privateKey, tlogKeyId);
  const fromMock = ({ statusCode, response, contentType }) => ({
    status: statusCode,
    body: response,
    type: contentType || 'text/plain',
  });

  routes['POST /api/v2/signingCert'] = async (req, _url, body) =>
    fromMock(await fulcio.fn(smoothFulcioRequest(req, body)));
  routes['POST /api/v1/log/entries'] = async (_req, _url, body) => {
    const answer = fromMock(await rekor.fn(smoothRekorRequest(body)));
    if (answer.status === 201) answer.body = smoothRekorResponse(answer.body, merkle);
    return answer;
  };
  routes['POST /v2log/api/v2/log/entries'] = async (_req, _url, body) => ({
    status: 201,
    body: rekorV2Entry(rekorV2Body(body), merkleV2),
  });
  routes['POST /api/v1/timestamp'] = async (req, _url, body) => {
    if (req.headers['content-type'] !== 'application/timestamp-query') {
      throw new HttpError(415, 'send an RFC 3161 TimeStampReq as application/timestamp-query');
    }
    let reply;
    try {
      reply = tsa.reply(body);
    } catch (e) {
      throw new HttpError(400, `not a timestamp request: ${e.stderr || e.message}`);
    }
    return { status: 200, body: reply, type: 'application/timestamp-reply' };
  };
  // GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL.
  routes['GET /token'] = async (req, url) => {
    if (req.headers.authorization !== `bearer ${requestToken}`) {
      throw new HttpError(401, 'bad ACTIONS_ID_TOKEN_REQUEST_TOKEN');
    }
    const audience = url.searchParams.get('audience') || 'https://github.com/o';
    const value = encodeUnsignedJwt(githubClaims(audience, args.claims));
    return { status: 200, body: JSON.stringify({ count: 1, value }) };
  };

  process.stdout.write(
    `${JSON.stringify({
      url: baseURL,
      fulcio_url: baseURL,
      rekor_url: baseURL,
      tsa_url: `${baseURL}/api/v1/timestamp`,
      rekor_v2_url: v2url,
      token_request_url: `${baseURL}/token?api-version=2.0`,
      token_request_token: requestToken,
      trusted_root: args.trustedRoot,
    })}\n`,
  );
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`sigstore test server failed: ${e.stack || e}\n`);
  process.exit(1);
});
