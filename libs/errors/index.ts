// The one base error of the project: every error a module throws on purpose is a
// FedError with a stable string `code`, so callers switch on codes, never on messages,
// and each service maps codes to gRPC status in exactly one place.

export type ErrorDetails = Record<string, unknown>;

export class FedError<C extends string = string> extends Error {
  readonly code: C;
  readonly details: ErrorDetails;

  constructor(code: C, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FedError';
    this.code = code;
    this.details = details;
  }
}

export function isFedError(err: unknown, code?: string): err is FedError {
  return err instanceof FedError && (code === undefined || err.code === code);
}

/** A message for logs and replies from anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
