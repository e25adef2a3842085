/**
 * A password, key or token secret. It prints as `[redacted]` wherever it goes (a log line, a
 * configuration dump, an error), so only `reveal()` hands out the value, at the one place that
 * passes it to a client library.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[redacted]';
  }
}
