// A fast reader for the XML plists devices actually send, used by parsePlistDict (./plist.ts) after its checks
// have passed. The plist package builds a full DOM with @xmldom/xmldom, which was 10–15 % of the server's time
// per device request (issue 10). This reader takes only the plain shape — an XML declaration, the plist
// DOCTYPE, comments, whitespace between elements, and the plist elements without attributes — and gives up
// (undefined) on anything else, which then goes to the plist package as before: its answer, and its refusals,
// stay the reference. What this reader returns is what plist.parse returns for the same text
// (test/fuzz-parser.test.ts compares them over the captures and their mutations).

const XML_DECLARATION = /^<\?xml version=(?:"1\.0"|'1\.0')(?: encoding=(?:"UTF-8"|'UTF-8'|"utf-8"|'utf-8'))?\s*\?>/;
const APPLE_DOCTYPE = '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">';
const PLIST_OPEN = /^<plist(?: version=(?:"1\.0"|'1\.0'))?>/;
const LINE_BREAKS_NORMALISED = /[\r\u0085\u2028]/;
const ENTITY = /&(?:(amp|lt|gt|quot|apos)|#x([0-9a-fA-F]+)|#([0-9]+));/g;
const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

class GiveUp extends Error {}
const giveUp = (): never => { throw new GiveUp(); };

/** The plist's root value, or undefined when the text is not of the plain shape this reader takes. */
export function readPlainPlist(text: string): unknown {
  // XML turns CR LF into LF in text (and xmldom NEL and U+2028 too); leave such bodies to the full parser.
  if (LINE_BREAKS_NORMALISED.test(text) || text.includes(']]>') || text.includes('<![CDATA[') || text.includes('<?', 1)) return undefined;
  try {
    const r = new Reader(text);
    r.prolog();
    const value = r.value();
    r.skip();
    r.expect('</plist>');
    r.skip();
    return r.at === text.length ? value : undefined;
  } catch (err) {
    // GiveUp, or a value the plist package fails on in its own words (atob on bad base64): let it say so.
    if (err instanceof GiveUp || err instanceof Error) return undefined;
    throw err;
  }
}

class Reader {
  at = 0;
  constructor(private readonly text: string) {}

  prolog(): void {
    const decl = XML_DECLARATION.exec(this.text);
    if (decl) this.at = decl[0].length;
    this.skip();
    if (this.text.startsWith('<!DOCTYPE', this.at)) {
      // Apple's, exactly: xmldom checks the characters of other identifiers its own way.
      this.expect(APPLE_DOCTYPE);
      this.skip();
    }
    const open = PLIST_OPEN.exec(this.text.slice(this.at, this.at + 40));
    if (!open) giveUp();
    this.at += open![0].length;
    this.skip();
  }

  /** Whitespace and comments between elements. */
  skip(): void {
    const t = this.text;
    for (;;) {
      while (this.at < t.length && (t[this.at] === ' ' || t[this.at] === '\n' || t[this.at] === '\t')) this.at++;
      if (!t.startsWith('<!--', this.at)) return;
      const end = t.indexOf('-->', this.at + 4);
      if (end === -1 || t.slice(this.at + 4, end).includes('--') || t[end - 1] === '-') giveUp();
      this.at = end + 3;
    }
  }

  expect(s: string): void {
    if (!this.text.startsWith(s, this.at)) giveUp();
    this.at += s.length;
  }

  /** `<name>` or `<name/>`: the name, and whether the element is empty. */
  private tag(): { name: string; empty: boolean } {
    const t = this.text;
    if (t[this.at] !== '<') giveUp();
    const close = t.indexOf('>', this.at);
    if (close === -1) giveUp();
    const inside = t.slice(this.at + 1, close);
    this.at = close + 1;
    const empty = inside.endsWith('/');
    const name = empty ? inside.slice(0, -1) : inside;
    if (!/^[a-z]+$/.test(name)) giveUp();
    return { name, empty };
  }

  /** The text up to `</name>`, entities decoded. */
  private textOf(name: string, decode: boolean): string {
    const t = this.text;
    const end = t.indexOf('<', this.at);
    if (end === -1) giveUp();
    const raw = t.slice(this.at, end);
    this.at = end;
    this.expect(`</${name}>`);
    if (!raw.includes('&')) return raw;
    if (!decode) giveUp();
    return raw.replace(ENTITY, (whole, named: string | undefined, hex: string | undefined, dec: string | undefined) =>
      named ? PREDEFINED[named]! : String.fromCodePoint(Number.parseInt(hex ?? dec!, hex ? 16 : 10)));
  }

  value(): unknown {
    const { name, empty } = this.tag();
    switch (name) {
      case 'dict': return empty ? {} : this.dict();
      case 'array': return empty ? [] : this.array();
      case 'string': return empty ? '' : this.textOf('string', true);
      case 'true': return empty ? true : giveUp();
      case 'false': return empty ? false : giveUp();
      case 'integer': return empty ? giveUp() : Number.parseInt(this.nonEmpty(this.textOf('integer', false)), 10);
      case 'real': return empty ? giveUp() : Number.parseFloat(this.nonEmpty(this.textOf('real', false)));
      case 'date': return empty ? giveUp() : new Date(this.nonEmpty(this.textOf('date', false)));
      case 'data': return empty ? Buffer.alloc(0) : base64Bytes(this.textOf('data', false));
      default: return giveUp();
    }
  }

  // The plist package reads an element with no text node differently from one with empty text; not ours to mimic.
  private nonEmpty(s: string): string {
    return s === '' ? giveUp() : s;
  }

  private dict(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (;;) {
      this.skip();
      if (this.text.startsWith('</dict>', this.at)) { this.at += 7; return out; }
      const { name, empty } = this.tag();
      if (name !== 'key') giveUp();
      const key = empty ? '' : this.textOf('key', true);
      // The plist package refuses it (CVE-2022-22912), and an empty <key></key> has no text node there.
      if (key === '__proto__' || (key === '' && !empty)) giveUp();
      this.skip();
      if (this.text.startsWith('<key', this.at) || this.text.startsWith('</', this.at)) giveUp();
      out[key] = this.value();
    }
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    for (;;) {
      this.skip();
      if (this.text.startsWith('</array>', this.at)) { this.at += 8; return out; }
      out.push(this.value());
    }
  }
}

/** As the plist package decodes <data>: whitespace removed, then atob (which throws on what is not base64). */
function base64Bytes(text: string): Buffer {
  return Buffer.from(atob(text.replace(/\s+/g, '')), 'latin1');
}
