/** One bad input, named by its path in the request (`hosts[3].name`, `selector`, `cursor`). */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * An error a service throws on purpose. The global problem+json filter turns it into a response
 * with a stable `code`; anything that is not a DomainError is an internal error (500).
 */
export abstract class DomainError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  abstract readonly title: string;

  constructor(
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class RequestValidationError extends DomainError {
  readonly status = 400;
  readonly code = 'validation_failed';
  readonly title = 'Request validation failed';

  constructor(errors: FieldError[]) {
    super(errors.map((error) => `${error.field}: ${error.message}`).join('; '), errors);
  }
}

/** A request body that is not the JSON it claims to be (syntax, encoding, cut short). */
export class MalformedBodyError extends DomainError {
  readonly status = 400;
  readonly code = 'malformed_request';
  readonly title = 'Malformed request body';

  constructor(message: string) {
    super(message, [{ field: '(body)', message }]);
  }
}

export class PayloadTooLargeError extends DomainError {
  readonly status = 413;
  readonly code = 'payload_too_large';
  readonly title = 'Request body too large';

  constructor(limitBytes: number) {
    const message = `the body is larger than the ${limitBytes} bytes this route accepts`;
    super(message, [{ field: '(body)', message }]);
  }
}

export class InvalidCursorError extends DomainError {
  readonly status = 400;
  readonly code = 'cursor_invalid';
  readonly title = 'Malformed pagination cursor';

  constructor() {
    super('cursor is not one this API returned', [{ field: 'cursor', message: 'not a cursor this API returned' }]);
  }
}

export class ResourceNotFoundError extends DomainError {
  readonly status = 404;
  readonly code: string;
  readonly title: string;

  constructor(resource: string, key: string) {
    super(`${resource} '${key}' does not exist`);
    this.code = `${resource}_not_found`;
    this.title = `${resource[0]?.toUpperCase()}${resource.slice(1)} not found`;
  }
}

export class ResourceConflictError extends DomainError {
  readonly status = 409;
  readonly code: string;
  readonly title: string;

  constructor(resource: string, field: string, value: string) {
    super(`a ${resource} with ${field} '${value}' already exists`, [{ field, message: `'${value}' is already taken` }]);
    this.code = `${resource}_exists`;
    this.title = `${resource[0]?.toUpperCase()}${resource.slice(1)} already exists`;
  }
}

export class UnauthenticatedError extends DomainError {
  readonly status = 401;
  readonly code = 'unauthenticated';
  readonly title = 'Authentication required';
}

export class ForbiddenError extends DomainError {
  readonly status = 403;
  readonly code = 'forbidden';
  readonly title = 'Not allowed';
}

/** Well-formed input that cannot be acted on as asked (e.g. a selector that matches no host). */
export class UnprocessableError extends DomainError {
  readonly status = 422;
  readonly title = 'Request cannot be carried out';

  constructor(
    readonly code: string,
    field: string,
    message: string,
  ) {
    super(message, [{ field, message }]);
  }
}

/** A request the resource's current state does not allow (e.g. resuming a finished rollout). */
export class StateConflictError extends DomainError {
  readonly status = 409;
  readonly title = 'Conflict with the current state';

  constructor(
    readonly code: string,
    message: string,
    field?: string,
  ) {
    super(message, field ? [{ field, message }] : []);
  }
}
