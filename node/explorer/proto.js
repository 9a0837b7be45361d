// Protobuf wire format, driven by the node's own descriptors (`/explorer/schema.json`): every message the
// page sends or reads is encoded and decoded from the field tables the node serves, so the page never carries
// a copy of the .proto files.
//
// Decoded messages are plain objects keyed by the proto field names. Every field is present: repeated fields
// as arrays, absent messages as null, scalars at their proto3 default. 64-bit integers become Numbers when
// they are exactly representable and decimal strings otherwise; bytes are Uint8Arrays; enums are their value
// names (the number when the node sent one this page does not know). For a oneof, `$<oneof name>` holds the
// name of the field that was set.
//
// Everything read is bounded by the bytes received: a truncated or malformed message throws ProtoError.

export class ProtoError extends Error {}

// FieldDescriptorProto.Type
const T = {
  DOUBLE: 1, FLOAT: 2, INT64: 3, UINT64: 4, INT32: 5, FIXED64: 6, FIXED32: 7, BOOL: 8, STRING: 9,
  GROUP: 10, MESSAGE: 11, BYTES: 12, UINT32: 13, ENUM: 14, SFIXED32: 15, SFIXED64: 16, SINT32: 17,
  SINT64: 18,
};
const WIRE = { VARINT: 0, I64: 1, LEN: 2, I32: 5 };
const MAX_DEPTH = 64;

function wireType(type) {
  switch (type) {
    case T.DOUBLE: case T.FIXED64: case T.SFIXED64: return WIRE.I64;
    case T.FLOAT: case T.FIXED32: case T.SFIXED32: return WIRE.I32;
    case T.STRING: case T.BYTES: case T.MESSAGE: return WIRE.LEN;
    default: return WIRE.VARINT;
  }
}

const utf8out = new TextDecoder('utf-8', { fatal: false });
const utf8in = new TextEncoder();

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.pos = 0;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  eof() { return this.pos >= this.b.length; }
  need(n) {
    if (n < 0 || this.pos + n > this.b.length) throw new ProtoError('truncated message');
  }
  // An unsigned varint as a BigInt (at most 10 bytes).
  varint() {
    let v = 0n, shift = 0n;
    for (let i = 0; i < 10; i++) {
      this.need(1);
      const byte = this.b[this.pos++];
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return v & 0xffffffffffffffffn;
      shift += 7n;
    }
    throw new ProtoError('varint longer than 10 bytes');
  }
  // A varint that must fit a length or a tag.
  small() {
    const v = this.varint();
    if (v > 0x7fffffffn) throw new ProtoError('length out of range');
    return Number(v);
  }
  bytes() {
    const n = this.small();
    this.need(n);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  fixed32() { this.need(4); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  fixed64() { this.need(8); const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v; }
  skip(wt) {
    switch (wt) {
      case WIRE.VARINT: this.varint(); break;
      case WIRE.I64: this.need(8); this.pos += 8; break;
      case WIRE.LEN: this.bytes(); break;
      case WIRE.I32: this.need(4); this.pos += 4; break;
      default: throw new ProtoError(`unsupported wire type ${wt}`);
    }
  }
}

class Writer {
  constructor() { this.parts = []; this.len = 0; }
  push(bytes) { this.parts.push(bytes); this.len += bytes.length; }
  varint(v) {
    let x = BigInt.asUintN(64, BigInt(v));
    const out = [];
    while (x >= 0x80n) { out.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    out.push(Number(x));
    this.push(Uint8Array.from(out));
  }
  tag(number, wt) { this.varint((BigInt(number) << 3n) | BigInt(wt)); }
  lenPrefixed(bytes) { this.varint(bytes.length); this.push(bytes); }
  finish() {
    const out = new Uint8Array(this.len);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

// A 64-bit value for display and arithmetic: a Number when exact, else its decimal string.
function num64(big) {
  return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(big) : big.toString();
}

function zigzag(big) { return (big >> 1n) ^ -(big & 1n); }

export class Codec {
  // `schema`: the object `/explorer/schema.json` holds.
  constructor(schema) {
    this.messages = schema.messages || {};
    this.enums = schema.enums || {};
    this.services = schema.services || {};
    this.byNumber = new Map();
  }

  fields(type) {
    const f = this.messages[type];
    if (!f) throw new ProtoError(`the node does not know message type ${type}`);
    return f;
  }

  index(type) {
    let m = this.byNumber.get(type);
    if (!m) {
      m = new Map(this.fields(type).map((f) => [f.number, f]));
      this.byNumber.set(type, m);
    }
    return m;
  }

  // The method's request and response types and whether the node streams its answer.
  method(service, name) {
    const m = this.services[service] && this.services[service][name];
    if (!m) throw new ProtoError(`the node has no method ${service}/${name}`);
    return m;
  }

  defaultOf(f) {
    if (f.repeated) return [];
    if (f.oneof || f.optional) return undefined;
    switch (f.type) {
      case T.MESSAGE: return null;
      case T.STRING: return '';
      case T.BYTES: return new Uint8Array(0);
      case T.BOOL: return false;
      case T.ENUM: return this.enumName(f.type_name, 0);
      default: return 0;
    }
  }

  enumName(type, n) {
    const e = this.enums[type];
    return (e && e[String(n)]) || n;
  }

  decode(type, bytes, depth = 0) {
    if (depth > MAX_DEPTH) throw new ProtoError('message nested too deep');
    const out = {};
    for (const f of this.fields(type)) out[f.name] = this.defaultOf(f);
    const byNum = this.index(type);
    const r = new Reader(bytes);
    while (!r.eof()) {
      const tag = r.varint();
      const number = Number(tag >> 3n), wt = Number(tag & 7n);
      const f = byNum.get(number);
      if (!f) { r.skip(wt); continue; }
      const expected = wireType(f.type);
      if (f.repeated && wt === WIRE.LEN && expected !== WIRE.LEN) {
        // A packed run of scalars.
        const inner = new Reader(r.bytes());
        while (!inner.eof()) out[f.name].push(this.scalar(f, expected, inner));
        continue;
      }
      if (wt !== expected) throw new ProtoError(`field ${type}.${f.name}: wire type ${wt}, expected ${expected}`);
      const v = f.type === T.MESSAGE
        ? this.decode(f.type_name, r.bytes(), depth + 1)
        : this.scalar(f, wt, r);
      if (f.repeated) out[f.name].push(v); else out[f.name] = v;
      if (f.oneof) out[`$${f.oneof}`] = f.name;
    }
    return out;
  }

  scalar(f, wt, r) {
    switch (f.type) {
      case T.STRING: return utf8out.decode(r.bytes());
      case T.BYTES: return r.bytes().slice();
      case T.BOOL: return r.varint() !== 0n;
      case T.UINT64: return num64(r.varint());
      case T.INT64: return num64(BigInt.asIntN(64, r.varint()));
      case T.SINT64: return num64(zigzag(r.varint()));
      case T.UINT32: return Number(BigInt.asUintN(32, r.varint()));
      case T.INT32: return Number(BigInt.asIntN(32, r.varint()));
      case T.SINT32: return Number(zigzag(BigInt.asUintN(32, r.varint())));
      case T.ENUM: return this.enumName(f.type_name, Number(BigInt.asIntN(32, r.varint())));
      case T.FIXED32: return r.fixed32();
      case T.SFIXED32: return r.fixed32() | 0;
      case T.FIXED64: return num64(r.fixed64());
      case T.SFIXED64: return num64(BigInt.asIntN(64, r.fixed64()));
      case T.FLOAT: { r.need(4); const v = r.view.getFloat32(r.pos, true); r.pos += 4; return v; }
      case T.DOUBLE: { r.need(8); const v = r.view.getFloat64(r.pos, true); r.pos += 8; return v; }
      default: r.skip(wt); return undefined;
    }
  }

  // Encodes `obj` (keys: proto field names) as `type`. Unknown keys are an error, so a typo never sends a
  // silently different request. proto3 defaults are left out unless the field tracks presence.
  encode(type, obj, depth = 0) {
    if (depth > MAX_DEPTH) throw new ProtoError('message nested too deep');
    const fields = new Map(this.fields(type).map((f) => [f.name, f]));
    for (const k of Object.keys(obj)) {
      if (!fields.has(k)) throw new ProtoError(`${type} has no field ${k}`);
    }
    const w = new Writer();
    for (const f of this.fields(type)) {
      const v = obj[f.name];
      if (v === undefined || v === null) continue;
      const values = f.repeated ? v : [v];
      for (const x of values) {
        if (!f.repeated && !f.oneof && !f.optional && isDefault(f, x)) continue;
        this.writeField(w, f, x, depth);
      }
    }
    return w.finish();
  }

  writeField(w, f, v, depth) {
    const wt = wireType(f.type);
    w.tag(f.number, wt);
    switch (f.type) {
      case T.MESSAGE: w.lenPrefixed(this.encode(f.type_name, v, depth + 1)); break;
      case T.STRING: w.lenPrefixed(utf8in.encode(String(v))); break;
      case T.BYTES: w.lenPrefixed(v); break;
      case T.BOOL: w.varint(v ? 1 : 0); break;
      case T.SINT32: case T.SINT64: {
        const x = BigInt(v);
        w.varint((x << 1n) ^ (x < 0n ? -1n : 0n));
        break;
      }
      case T.ENUM: w.varint(typeof v === 'number' ? v : this.enumNumber(f.type_name, v)); break;
      case T.FIXED32: case T.SFIXED32: {
        const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, Number(v) >>> 0, true); w.push(b); break;
      }
      case T.FIXED64: case T.SFIXED64: {
        const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true); w.push(b); break;
      }
      case T.FLOAT: { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); w.push(b); break; }
      case T.DOUBLE: { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, v, true); w.push(b); break; }
      default: w.varint(BigInt(v));
    }
  }

  enumNumber(type, name) {
    const e = this.enums[type] || {};
    for (const [n, v] of Object.entries(e)) if (v === name) return Number(n);
    throw new ProtoError(`${type} has no value ${name}`);
  }
}

function isDefault(f, v) {
  switch (f.type) {
    case T.MESSAGE: return false;
    case T.STRING: return v === '';
    case T.BYTES: return v.length === 0;
    case T.BOOL: return v === false;
    default: return v === 0 || v === 0n || v === '0';
  }
}

// Hex of bytes (lower case).
export function hex(bytes) {
  let s = '';
  for (const b of bytes || []) s += b.toString(16).padStart(2, '0');
  return s;
}

// Bytes of a hex string, or null when it is not hex.
export function unhex(s) {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}
