import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Client } from 'pg';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config.schema';

/** Called with a notification's payload, or with null after a reconnect (some may have been missed). */
export type NotificationListener = (payload: string | null) => void;

const RECONNECT_DELAY_MS = 1_000;

/**
 * One dedicated PostgreSQL connection per process that LISTENs on the channels someone listens
 * to, opened on first use (a worker that never listens never opens it). Reconnects by itself;
 * listeners hear null after a reconnect, so they re-read what they may have missed.
 */
@Injectable()
export class PgNotifications implements OnModuleDestroy {
  private readonly logger = new Logger(PgNotifications.name);
  private readonly listeners = new Map<string, Set<NotificationListener>>();
  private client: Promise<Client> | null = null;
  private closed = false;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  async listen(channel: string, listener: NotificationListener): Promise<void> {
    const known = this.listeners.get(channel);
    if (known) {
      known.add(listener);
      return;
    }
    this.listeners.set(channel, new Set([listener]));
    const client = await this.connection();
    await client.query(`LISTEN ${quoteIdentifier(channel)}`);
  }

  unlisten(channel: string, listener: NotificationListener): void {
    this.listeners.get(channel)?.delete(listener);
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    const client = await this.client?.catch(() => null);
    await client?.end().catch(() => undefined);
  }

  private connection(): Promise<Client> {
    this.client ??= this.connect();
    return this.client;
  }

  private async connect(): Promise<Client> {
    const client = new Client({ connectionString: this.config.DATABASE_URL });
    client.on('notification', (message) => {
      for (const listener of this.listeners.get(message.channel) ?? []) listener(message.payload ?? null);
    });
    const lost = (error?: Error) => {
      if (this.closed || this.client === null) return;
      this.logger.warn(`notification connection lost${error ? `: ${error.message}` : ''}; reconnecting`);
      this.client = null;
      setTimeout(() => void this.relisten(), RECONNECT_DELAY_MS).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
    } catch (error) {
      this.client = null;
      throw error;
    }
    return client;
  }

  private async relisten(): Promise<void> {
    try {
      const client = await this.connection();
      for (const channel of this.listeners.keys()) await client.query(`LISTEN ${quoteIdentifier(channel)}`);
      for (const listeners of this.listeners.values()) for (const listener of listeners) listener(null);
    } catch (error) {
      this.logger.warn(`could not listen again: ${error instanceof Error ? error.message : String(error)}`);
      setTimeout(() => void this.relisten(), RECONNECT_DELAY_MS).unref();
    }
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
