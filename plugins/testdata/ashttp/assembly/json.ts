// A small JSON reader for documents the host wrote: it finds the value of a member in an
// object, decodes strings and copies values as they are. It never traps on bad input: a
// position of -1 means "not found or malformed", and every caller checks it.

const QUOTE: i32 = 0x22; // "
const BACKSLASH: i32 = 0x5c;
const LBRACE: i32 = 0x7b; // {
const RBRACE: i32 = 0x7d;
const LBRACKET: i32 = 0x5b; // [
const RBRACKET: i32 = 0x5d;
const COMMA: i32 = 0x2c;
const COLON: i32 = 0x3a;

function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

// skipSpace returns the first position at or after i that is not JSON white space.
export function skipSpace(s: string, i: i32): i32 {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

// stringEnd returns the position after the closing quote of the string starting at i, or -1.
function stringEnd(s: string, i: i32): i32 {
  if (i < 0 || i >= s.length || s.charCodeAt(i) != QUOTE) return -1;
  i++;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c == BACKSLASH) {
      i += 2;
      continue;
    }
    if (c == QUOTE) return i + 1;
    i++;
  }
  return -1;
}

// valueEnd returns the position after the JSON value starting at i (white space skipped
// first), or -1 when there is none.
export function valueEnd(s: string, i: i32): i32 {
  i = skipSpace(s, i);
  if (i >= s.length) return -1;
  const c = s.charCodeAt(i);
  if (c == QUOTE) return stringEnd(s, i);
  if (c == LBRACE || c == LBRACKET) {
    // Count brackets, stepping over strings so brackets inside them do not count.
    let depth = 0;
    while (i < s.length) {
      const d = s.charCodeAt(i);
      if (d == QUOTE) {
        i = stringEnd(s, i);
        if (i < 0) return -1;
        continue;
      }
      if (d == LBRACE || d == LBRACKET) depth++;
      if (d == RBRACE || d == RBRACKET) {
        depth--;
        if (depth == 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  const start = i;
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d == COMMA || d == RBRACE || d == RBRACKET || isSpace(d)) break;
    i++;
  }
  return i > start ? i : -1;
}

// member returns the position of the value of key in the object starting at obj (white space
// skipped first), or -1 when obj is not an object, the key is absent or the text is malformed.
export function member(s: string, obj: i32, key: string): i32 {
  if (obj < 0) return -1;
  let i = skipSpace(s, obj);
  if (i >= s.length || s.charCodeAt(i) != LBRACE) return -1;
  i = skipSpace(s, i + 1);
  if (i < s.length && s.charCodeAt(i) == RBRACE) return -1;
  while (i < s.length) {
    const keyEnd = stringEnd(s, i);
    if (keyEnd < 0) return -1;
    const name = decodeString(s, i);
    i = skipSpace(s, keyEnd);
    if (i >= s.length || s.charCodeAt(i) != COLON) return -1;
    const value = skipSpace(s, i + 1);
    if (name !== null && name == key) return value;
    i = valueEnd(s, value);
    if (i < 0) return -1;
    i = skipSpace(s, i);
    if (i >= s.length) return -1;
    const c = s.charCodeAt(i);
    if (c == RBRACE) return -1;
    if (c != COMMA) return -1;
    i = skipSpace(s, i + 1);
  }
  return -1;
}

// raw returns the text of the value starting at i as it is, or null.
export function raw(s: string, i: i32): string | null {
  if (i < 0) return null;
  const end = valueEnd(s, i);
  if (end < 0) return null;
  return s.substring(i, end);
}

function hexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// decodeString decodes the JSON string starting at i, or returns null when there is none.
// AssemblyScript strings are UTF-16 like JSON's \u escapes, so surrogate pairs need no care.
export function decodeString(s: string, i: i32): string | null {
  if (i < 0 || i >= s.length || s.charCodeAt(i) != QUOTE) return null;
  const end = stringEnd(s, i);
  if (end < 0) return null;
  let out = "";
  let run = i + 1; // start of the run of plain characters not yet copied
  let j = i + 1;
  while (j < end - 1) {
    if (s.charCodeAt(j) != BACKSLASH) {
      j++;
      continue;
    }
    out += s.substring(run, j);
    const e = s.charCodeAt(j + 1);
    j += 2;
    if (e == 0x6e) out += "\n";
    else if (e == 0x74) out += "\t";
    else if (e == 0x72) out += "\r";
    else if (e == 0x62) out += "\b";
    else if (e == 0x66) out += "\f";
    else if (e == 0x75) {
      if (j + 4 > end - 1) return null;
      let code = 0;
      for (let k = 0; k < 4; k++) {
        const h = hexDigit(s.charCodeAt(j + k));
        if (h < 0) return null;
        code = code * 16 + h;
      }
      out += String.fromCharCode(code);
      j += 4;
    } else out += String.fromCharCode(e); // \" \\ \/
    run = j;
  }
  return out + s.substring(run, end - 1);
}

// stringMember is the decoded string value of key in the object at obj, or null.
export function stringMember(s: string, obj: i32, key: string): string | null {
  return decodeString(s, member(s, obj, key));
}

// quote encodes s as a JSON string.
export function quote(s: string): string {
  let out = '"';
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | null = null;
    if (c == QUOTE) esc = '\\"';
    else if (c == BACKSLASH) esc = "\\\\";
    else if (c == 0x0a) esc = "\\n";
    else if (c == 0x0d) esc = "\\r";
    else if (c == 0x09) esc = "\\t";
    else if (c < 0x20) esc = "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    if (esc !== null) {
      out += s.substring(run, i) + esc;
      run = i + 1;
    }
  }
  return out + s.substring(run) + '"';
}
