import { Module } from '@nestjs/common';
import { SshExecutor } from './ssh-executor';

/** The SSH executor: one connection pool per process, closed when the application shuts down. */
@Module({
  providers: [SshExecutor],
  exports: [SshExecutor],
})
export class SshModule {}
