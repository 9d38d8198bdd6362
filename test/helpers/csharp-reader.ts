/**
 * Reads an event stream the way ServiceStack's C# `ServerEventsClient` does
 * (its `ProcessResponse` and `ProcessLine`, the same in the v5 assemblies and
 * in today's source), to show what that client would make of our bytes. We
 * cannot run .NET here, so its documented behaviour is modelled instead:
 *
 * - each read is split at `\n`; a non-blank line starts an event if none is
 *   open, and only its `id:` (parsed as a long) and `data:` fields are kept;
 * - an empty line dispatches the open event. An event without a `data:` line
 *   (a comment block such as `:\n\n`) makes the client dereference the
 *   missing data and report the exception through `OnException`;
 * - a data line without a space goes to `OnMessage` raw; a selector without
 *   a `.` throws;
 * - a read that ends just after a non-blank line's newline leaves the
 *   client's line loop where it was, and it spins for ever.
 */
export class CSharpClientReader {
  /** What would have reached `OnException`. */
  readonly exceptions: string[] = [];
  /** Reads that would have left the client spinning. */
  spins = 0;
  /** The events it would have dispatched: `[id, data]`. */
  readonly events: Array<{ id?: number; data: string }> = [];
  private pending = '';
  private current: { id?: number; data?: string } | undefined;

  /** Feeds one read (one chunk as the server wrote it). */
  read(chunk: string): void {
    let text = this.pending + chunk;
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n')) {
      if (at === 0) {
        this.dispatch();
        text = text.slice(1);
        continue;
      }
      const line = text.slice(0, at);
      if (line.trim() !== '') this.processLine(line);
      if (text.length === at + 1) {
        // The real client does not move past this line: it reads it again and again.
        this.spins++;
        text = '';
        break;
      }
      text = text.slice(at + 1);
    }
    this.pending = text;
  }

  private processLine(line: string): void {
    this.current ??= {};
    const colon = line.indexOf(':');
    const label = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (label === 'id') {
      if (!/^-?\d+$/.test(value)) this.exceptions.push(`FormatException: id '${value}' is not a long`);
      else this.current.id = Number(value);
    } else if (label === 'data') {
      this.current.data = value;
    }
  }

  private dispatch(): void {
    const event = this.current;
    this.current = undefined;
    if (!event) return;
    if (event.data === undefined) {
      this.exceptions.push('NullReferenceException: an event with no data line');
      return;
    }
    const space = event.data.indexOf(' ');
    if (space >= 0) {
      const selector = event.data.slice(0, space);
      const withoutChannel = selector.includes('@') ? selector.slice(selector.indexOf('@') + 1) : selector;
      if (withoutChannel !== '' && !withoutChannel.includes('.')) this.exceptions.push(`ArgumentException: Invalid Selector '${withoutChannel}'`);
    }
    this.events.push({ id: event.id, data: event.data });
  }
}

/** Runs every chunk of a stream through a fresh reader. */
export function readAsCSharpClient(chunks: ReadonlyArray<{ text: string }>): CSharpClientReader {
  const reader = new CSharpClientReader();
  for (const chunk of chunks) reader.read(chunk.text);
  return reader;
}
