/**
 * Checks, as the bytes stream past, that they are one NAR and nothing else: the `nix-archive-1`
 * magic, then nodes as Nix's parser accepts them (regular files, symlinks, directories with valid,
 * sorted entry names, zero padding), and no byte after the top node's end. Only the framing is
 * parsed: file contents are counted, not kept, so checking costs little besides the hash.
 *
 * Knowing the framing lets an upload be refused early: bytes that are not a NAR fail on their first
 * 8 bytes, and a file whose declared length passes a limit fails before its contents are inflated.
 */

export class NarFormatError extends Error {
  constructor(
    message: string,
    /** `not_a_nar` (wrong start), `trailing_data` (bytes after the NAR) or `bad_nar` (malformed). */
    readonly reason: 'not_a_nar' | 'trailing_data' | 'bad_nar',
  ) {
    super(message);
  }
}

/** What the next string of the NAR must be. */
type Expect =
  | 'magic'
  | 'open'
  | 'typeKey'
  | 'type'
  | 'regularTag'
  | 'executableValue'
  | 'contentsKey'
  | 'contentsLength'
  | 'targetKey'
  | 'target'
  | 'directoryTag'
  | 'entryOpen'
  | 'nameKey'
  | 'name'
  | 'nodeKey'
  | 'entryClose'
  | 'close';

const MAGIC = 'nix-archive-1';
/** Longest keyword of the format ('nix-archive-1'). */
const KEYWORD_MAX = 16;
/** NAME_MAX and PATH_MAX on Linux: longer names or link targets cannot be restored. */
const NAME_MAX = 255;
const TARGET_MAX = 4096;
/** Deeper than PATH_MAX allows anyway (each level adds at least `x/`); bounds the memory kept per level. */
const DEPTH_MAX = 2048;

const padding = (length: number) => (8 - (length % 8)) % 8;

export class NarStructureChecker {
  private expect: Expect = 'magic';
  /** Per open directory, the name of its last entry (entries must be sorted). */
  private readonly directories: (Buffer | null)[] = [];
  private phase: 'length' | 'string' | 'contents' | 'padding' = 'length';
  /** Bytes still needed to complete the phase. */
  private need = 8;
  private gathered: Buffer[] = [];
  private stringLength = 0;
  private finished = false;
  /** Bytes checked so far. */
  size = 0;

  /**
   * The least the NAR's size can be, given what it has declared: the bytes so far plus the rest of
   * the file contents being read. Past a limit, the upload can be refused before inflating them.
   */
  get declaredSize(): number {
    return this.phase === 'contents' ? this.size + this.need + padding(this.stringLength) : this.size;
  }

  /** Checks the next bytes; throws a NarFormatError at the first one that does not fit. */
  update(chunk: Buffer): void {
    for (let i = 0; i < chunk.length;) {
      if (this.finished) {
        throw new NarFormatError(
          `the NAR ends at byte ${this.size}, but more data follows it`,
          'trailing_data',
        );
      }
      const take = Math.min(this.need, chunk.length - i);
      // Copied: the caller may reuse its buffer once this returns, and a string may span chunks.
      if (this.phase !== 'contents') this.gathered.push(Buffer.from(chunk.subarray(i, i + take)));
      i += take;
      this.need -= take;
      this.size += take;
      if (this.need === 0) this.completePhase();
    }
  }

  /** Throws unless the bytes so far are one whole NAR. */
  end(): void {
    if (this.finished) return;
    if (this.expect === 'magic') this.fail('cut off');
    throw new NarFormatError(`the NAR is cut off after ${this.size} bytes`, 'bad_nar');
  }

  private fail(message: string): never {
    if (this.expect === 'magic') {
      throw new NarFormatError(`the upload is not a NAR: it does not start with '${MAGIC}'`, 'not_a_nar');
    }
    throw new NarFormatError(`malformed NAR at byte ${this.size}: ${message}`, 'bad_nar');
  }

  private take(): Buffer {
    const bytes = this.gathered.length === 1 ? this.gathered[0]! : Buffer.concat(this.gathered);
    this.gathered = [];
    return bytes;
  }

  private completePhase(): void {
    // Zero-length phases (an empty string, empty contents, no padding) complete at once.
    do {
      switch (this.phase) {
        case 'length':
          this.lengthRead(this.take().readBigUInt64LE(0));
          break;
        case 'string': {
          const bytes = this.take();
          this.checkPadding(bytes.subarray(this.stringLength));
          this.phase = 'length';
          this.need = 8;
          this.token(bytes.subarray(0, this.stringLength));
          break;
        }
        case 'contents':
          this.phase = 'padding';
          this.need = padding(this.stringLength);
          break;
        case 'padding':
          this.checkPadding(this.take());
          this.phase = 'length';
          this.need = 8;
          this.expect = 'close';
          break;
      }
    } while (this.need === 0 && !this.finished);
  }

  private lengthRead(length: bigint): void {
    if (this.expect === 'contentsLength') {
      if (length > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`a file of ${length} bytes`);
      this.stringLength = Number(length);
      this.phase = 'contents';
      this.need = this.stringLength;
      return;
    }
    const max = this.expect === 'name' ? NAME_MAX : this.expect === 'target' ? TARGET_MAX : KEYWORD_MAX;
    if (length > BigInt(max)) this.fail(`a string of ${length} bytes where ${this.describe()} belongs`);
    this.stringLength = Number(length);
    this.phase = 'string';
    this.need = this.stringLength + padding(this.stringLength);
  }

  private checkPadding(bytes: Buffer): void {
    if (bytes.some((byte) => byte !== 0)) this.fail('non-zero padding');
  }

  private describe(): string {
    return this.expect === 'name'
      ? 'a file name'
      : this.expect === 'target'
        ? 'a symlink target'
        : 'a keyword';
  }

  /** Moves on from a complete string (other than file contents). */
  private token(value: Buffer): void {
    const text = this.expect === 'name' || this.expect === 'target' ? '' : value.toString('latin1');
    const want = (keyword: string, next: Expect) => {
      if (text !== keyword) this.fail(`expected '${keyword}', found '${text.slice(0, 16)}'`);
      this.expect = next;
    };
    switch (this.expect) {
      case 'magic':
        return want(MAGIC, 'open');
      case 'open':
        return want('(', 'typeKey');
      case 'typeKey':
        return want('type', 'type');
      case 'type':
        if (text === 'regular') this.expect = 'regularTag';
        else if (text === 'symlink') this.expect = 'targetKey';
        else if (text === 'directory') this.openDirectory();
        else this.fail(`unknown node type '${text.slice(0, 16)}'`);
        return;
      case 'regularTag':
        if (text === 'executable') this.expect = 'executableValue';
        else want('contents', 'contentsLength');
        return;
      case 'executableValue':
        return want('', 'contentsKey');
      case 'contentsKey':
        return want('contents', 'contentsLength');
      case 'targetKey':
        return want('target', 'target');
      case 'target':
        if (value.length === 0 || value.includes(0))
          this.fail('an empty symlink target or one with a NUL byte');
        this.expect = 'close';
        return;
      case 'directoryTag':
        if (text === ')') return this.closeDirectory();
        return want('entry', 'entryOpen');
      case 'entryOpen':
        return want('(', 'nameKey');
      case 'nameKey':
        return want('name', 'name');
      case 'name':
        return this.entryName(value);
      case 'nodeKey':
        return want('node', 'open');
      case 'entryClose':
        return want(')', 'directoryTag');
      case 'close':
        want(')', 'close');
        return this.nodeEnded();
      case 'contentsLength':
        throw new Error('unreachable: a file length is not a string');
    }
  }

  private openDirectory(): void {
    if (this.directories.length >= DEPTH_MAX) this.fail(`directories nested deeper than ${DEPTH_MAX}`);
    this.directories.push(null);
    this.expect = 'directoryTag';
  }

  private closeDirectory(): void {
    this.directories.pop();
    this.nodeEnded();
  }

  private entryName(name: Buffer): void {
    const text = name.toString('latin1');
    if (name.length === 0 || text === '.' || text === '..' || name.includes(0x2f) || name.includes(0)) {
      this.fail(`invalid file name '${name.toString('utf8').slice(0, 64)}'`);
    }
    const depth = this.directories.length - 1;
    const previous = this.directories[depth];
    if (previous && Buffer.compare(previous, name) >= 0) this.fail('directory entries are not sorted');
    this.directories[depth] = name;
    this.expect = 'nodeKey';
  }

  /** A node's closing `)` was read: the NAR ends, or the directory entry holding the node does. */
  private nodeEnded(): void {
    if (this.directories.length === 0) this.finished = true;
    else this.expect = 'entryClose';
  }
}
