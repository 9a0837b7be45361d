// gRPC-web over fetch, against the node that served this page (same origin): unary calls and server streams.
// A call's request and response types come from the node's schema (see proto.js).

import { ProtoError } from './proto.js';

// Largest single message the page accepts from the node (a block with its txs and results).
const MAX_MESSAGE = 64 * 1024 * 1024;

export class GrpcError extends Error {
  constructor(code, message) {
    super(`${CODE_NAMES[code] || `code ${code}`}: ${message}`);
    this.code = code;
    this.grpcMessage = message;
  }
}

export const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

function frame(payload) {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length, false);
  out.set(payload, 5);
  return out;
}

// Trailers frame text ("grpc-status: 0\r\ngrpc-message: …") as a lower-cased map.
function trailers(bytes) {
  const map = {};
  for (const line of new TextDecoder().decode(bytes).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) map[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return map;
}

function statusOf(map) {
  const code = Number(map['grpc-status'] ?? 2);
  let message = map['grpc-message'] || '';
  try { message = decodeURIComponent(message); } catch (_) { /* shown as sent */ }
  return { code, message };
}

// Splits complete frames off the front of `buf`: returns [frames, rest].
function takeFrames(buf) {
  const frames = [];
  let at = 0;
  while (buf.length - at >= 5) {
    const len = new DataView(buf.buffer, buf.byteOffset + at + 1, 4).getUint32(0, false);
    if (len > MAX_MESSAGE) throw new ProtoError(`a message of ${len} bytes is over the page's limit`);
    if (buf.length - at - 5 < len) break;
    frames.push({ flags: buf[at], payload: buf.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return [frames, buf.subarray(at)];
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export class Client {
  // `codec`: a proto.js Codec built from this node's schema.
  constructor(codec, base = '') {
    this.codec = codec;
    this.base = base;
  }

  async post(service, method, req, signal) {
    const m = this.codec.method(service, method);
    const body = frame(this.codec.encode(m.input, req));
    const resp = await fetch(`${this.base}/${service}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body,
      signal,
    });
    if (!resp.ok) throw new GrpcError(14, `HTTP ${resp.status}`);
    // A trailers-only answer (an error before any message) carries the status in the headers.
    const headerStatus = resp.headers.get('grpc-status');
    if (headerStatus !== null && headerStatus !== '0') {
      const s = statusOf({ 'grpc-status': headerStatus, 'grpc-message': resp.headers.get('grpc-message') || '' });
      throw new GrpcError(s.code, s.message);
    }
    return { m, resp };
  }

  // One request, one response (decoded); a non-OK status throws GrpcError.
  async call(service, method, req = {}) {
    const { m, resp } = await this.post(service, method, req);
    const buf = new Uint8Array(await resp.arrayBuffer());
    const [frames, rest] = takeFrames(buf);
    if (rest.length) throw new ProtoError('truncated gRPC-web frame');
    let message = null, status = null;
    for (const f of frames) {
      if (f.flags & 0x80) status = statusOf(trailers(f.payload));
      else if (message === null) message = this.codec.decode(m.output, f.payload);
    }
    if (status === null) status = { code: resp.headers.get('grpc-status') === '0' ? 0 : 2, message: 'no status' };
    if (status.code !== 0) throw new GrpcError(status.code, status.message);
    if (message === null) throw new GrpcError(2, 'no response message');
    return message;
  }

  // A server stream: `onMessage(decoded)` for each message as it arrives. Resolves with the final status
  // ({code, message, trailers}) when the node ends the stream; `signal` (an AbortSignal) stops it.
  async stream(service, method, req, onMessage, signal) {
    const { m, resp } = await this.post(service, method, req, signal);
    const reader = resp.body.getReader();
    let buf = new Uint8Array(0);
    let status = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf = concat(buf, value);
      const [frames, rest] = takeFrames(buf);
      buf = rest.slice();
      for (const f of frames) {
        if (f.flags & 0x80) {
          const t = trailers(f.payload);
          status = { ...statusOf(t), trailers: t };
        } else {
          onMessage(this.codec.decode(m.output, f.payload));
        }
      }
    }
    return status || { code: 14, message: 'the stream ended without a status', trailers: {} };
  }
}
