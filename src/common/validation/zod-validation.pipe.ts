import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { z } from 'zod';
import { FieldError, RequestValidationError } from '../errors/domain-errors';
import { formatIssuePath, isZodDtoClass } from './zod-dto';

/** Validates every @Body/@Query/@Param whose declared type is a zod DTO; others pass through. */
@Injectable()
export class ZodValidationPipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (!isZodDtoClass(metadata.metatype)) return value;
    const result = metadata.metatype.schema.safeParse(value ?? {});
    if (result.success) return result.data;
    throw new RequestValidationError(issuesToFieldErrors(result.error.issues));
  }
}

export function issuesToFieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.flatMap((issue): FieldError[] => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        field: formatIssuePath([...issue.path, key]),
        message: 'is not a known field',
      }));
    }
    return [{ field: formatIssuePath(issue.path) || '(body)', message: issue.message }];
  });
}
