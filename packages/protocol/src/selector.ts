import { labelKeyProblem, labelValueProblem } from './label-syntax';

/**
 * A selector that does not parse, with the offset where parsing failed. The API answers it with a 400
 * problem (`selector_invalid`) naming `errors[0].field`; the dashboard shows it under the input.
 */
export class SelectorSyntaxError extends Error {
  readonly status = 400;
  readonly code = 'selector_invalid';
  readonly title = 'Malformed label selector';
  readonly errors: { field: string; message: string }[];

  constructor(
    readonly reason: string,
    /** Zero-based offset in the selector text where parsing failed. */
    readonly position: number,
    field = 'selector',
  ) {
    super(`${reason} at position ${position}`);
    this.name = 'SelectorSyntaxError';
    this.errors = [{ field, message: this.message }];
  }
}

/**
 * Kubernetes label selector syntax, e.g. `role=web,env in (prod,staging),!canary,tier!=db`.
 * Requirements are ANDed. As in Kubernetes, `!=` and `notin` also match hosts without the key.
 */
export type Requirement =
  | { key: string; operator: 'exists' | 'notExists' }
  | { key: string; operator: 'equals' | 'notEquals'; value: string }
  | { key: string; operator: 'in' | 'notIn'; values: string[] };

export type Selector = Requirement[];

type TokenKind = 'word' | '!' | '=' | '==' | '!=' | '(' | ')' | ',' | 'end';
interface Token {
  kind: TokenKind;
  text: string;
  position: number;
}

const SPECIAL = new Set([' ', '\t', ',', '=', '!', '(', ')']);

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const char = input[i] as string;
    if (char === ' ' || char === '\t') {
      i += 1;
    } else if (char === '!' || char === '=') {
      const double = input[i + 1] === '=';
      const kind: TokenKind = char === '!' ? (double ? '!=' : '!') : double ? '==' : '=';
      tokens.push({ kind, text: kind, position: i });
      i += double ? 2 : 1;
    } else if (char === '(' || char === ')' || char === ',') {
      tokens.push({ kind: char, text: char, position: i });
      i += 1;
    } else {
      const start = i;
      while (i < input.length && !SPECIAL.has(input[i] as string)) i += 1;
      tokens.push({ kind: 'word', text: input.slice(start, i), position: start });
    }
  }
  tokens.push({ kind: 'end', text: '', position: input.length });
  return tokens;
}

class Parser {
  private index = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly field: string,
  ) {}

  parse(): Selector {
    const requirements: Selector = [];
    if (this.peek().kind === 'end') return requirements;
    for (;;) {
      requirements.push(this.requirement());
      const next = this.next();
      if (next.kind === 'end') return requirements;
      if (next.kind !== ',') this.fail(`expected ',' or end of selector, found '${next.text}'`, next);
    }
  }

  private requirement(): Requirement {
    if (this.peek().kind === '!') {
      this.next();
      const key = this.key();
      const after = this.peek();
      if (after.kind !== ',' && after.kind !== 'end') {
        this.fail(`'!${key}' takes no operator, found '${after.text}'`, after);
      }
      return { key, operator: 'notExists' };
    }
    const key = this.key();
    const operator = this.peek();
    switch (operator.kind) {
      case ',':
      case 'end':
        return { key, operator: 'exists' };
      case '=':
      case '==':
        this.next();
        return { key, operator: 'equals', value: this.value() };
      case '!=':
        this.next();
        return { key, operator: 'notEquals', value: this.value() };
      case 'word':
        if (operator.text === 'in' || operator.text === 'notin') {
          this.next();
          return { key, operator: operator.text === 'in' ? 'in' : 'notIn', values: this.valueSet() };
        }
        return this.fail(`expected an operator (=, ==, !=, in, notin), found '${operator.text}'`, operator);
      default:
        return this.fail(`expected an operator (=, ==, !=, in, notin), found '${operator.text}'`, operator);
    }
  }

  private key(): string {
    const token = this.next();
    if (token.kind !== 'word') {
      this.fail(
        token.kind === 'end'
          ? 'expected a label key, found end of selector'
          : `expected a label key, found '${token.text}'`,
        token,
      );
    }
    const problem = labelKeyProblem(token.text);
    if (problem) this.fail(problem, token);
    return token.text;
  }

  /** A value after = or !=; may be empty (`tier=` selects hosts whose tier label is ""). */
  private value(): string {
    const token = this.peek();
    if (token.kind === ',' || token.kind === 'end') return '';
    this.next();
    if (token.kind !== 'word') this.fail(`expected a label value, found '${token.text}'`, token);
    const problem = labelValueProblem(token.text);
    if (problem) this.fail(problem, token);
    return token.text;
  }

  private valueSet(): string[] {
    const open = this.next();
    if (open.kind !== '(')
      this.fail(`expected '(' to start a value list, found '${open.text || 'end of selector'}'`, open);
    const values: string[] = [];
    for (;;) {
      // After a comma, ')' ends an empty value as in Kubernetes (`(a,)` is a and ""); `()` stays an error.
      values.push(values.length > 0 && this.peek().kind === ')' ? '' : this.value());
      const next = this.next();
      if (next.kind === ')') break;
      if (next.kind !== ',') {
        this.fail(
          next.kind === 'end' ? "unclosed value list, expected ')'" : `expected ',' or ')', found '${next.text}'`,
          next,
        );
      }
    }
    return values;
  }

  private peek(): Token {
    return this.tokens[this.index] as Token;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.index += 1;
    return token;
  }

  private fail(reason: string, token: Token): never {
    throw new SelectorSyntaxError(reason, token.position, this.field);
  }
}

/**
 * Parses a label selector. Throws SelectorSyntaxError naming the position where it failed.
 * An empty selector selects everything.
 */
export function parseSelector(input: string, field = 'selector'): Selector {
  if (input.length > 4096) throw new SelectorSyntaxError('selector is longer than 4096 characters', 4096, field);
  return new Parser(tokenize(input), field).parse();
}

/** The canonical text of a selector; parseSelector(formatSelector(s)) equals s. */
export function formatSelector(selector: Selector): string {
  return selector
    .map((requirement) => {
      switch (requirement.operator) {
        case 'exists':
          return requirement.key;
        case 'notExists':
          return `!${requirement.key}`;
        case 'equals':
          return `${requirement.key}=${requirement.value}`;
        case 'notEquals':
          return `${requirement.key}!=${requirement.value}`;
        case 'in':
        case 'notIn':
          return `${requirement.key} ${requirement.operator === 'in' ? 'in' : 'notin'} (${requirement.values.join(',')})`;
      }
    })
    .join(',');
}

/** Whether a label map satisfies a selector (the same semantics the SQL translation has). */
export function matchesSelector(selector: Selector, labels: Record<string, string>): boolean {
  return selector.every((requirement) => {
    const has = Object.hasOwn(labels, requirement.key);
    const actual = labels[requirement.key];
    switch (requirement.operator) {
      case 'exists':
        return has;
      case 'notExists':
        return !has;
      case 'equals':
        return has && actual === requirement.value;
      case 'notEquals':
        return !has || actual !== requirement.value;
      case 'in':
        return has && requirement.values.includes(actual as string);
      case 'notIn':
        return !has || !requirement.values.includes(actual as string);
    }
  });
}
