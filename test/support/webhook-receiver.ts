import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from '../../src/webhooks/webhook-signature.js';

export interface ReceivedWebhook {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly body: string;
  /** The signature checked with the receiver's secret, the way a receiver would. */
  readonly verified: boolean;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:PORT/hook`, the same after down() and up(). */
  readonly url: string;
  readonly received: readonly ReceivedWebhook[];
  /** Stops listening: deliveries get a refused connection. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Answer every POST with this status (default 200); a Location when it is a redirect. */
  answerWith(status: number, location?: string): void;
  close(): Promise<void>;
}

/** A webhook receiver on loopback that verifies every signature, as the README's few lines do. */
export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  let status = 200;
  let location: string | undefined;
  let port = 0;
  let server: Server | undefined;
  const listen = async () => {
    server = createServer(async (request: IncomingMessage, response) => {
      const body = await new Promise<string>((resolve) => {
        let text = '';
        request.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text));
      });
      const signature = String(request.headers[WEBHOOK_SIGNATURE_HEADER] ?? '');
      received.push({
        deliveryId: String(request.headers['clipgate-delivery-id'] ?? ''),
        attempt: Number(request.headers['clipgate-attempt'] ?? 0),
        body,
        verified: verifyWebhookSignature(secret, body, signature, Math.floor(Date.now() / 1000)),
      });
      response.writeHead(status, location ? { location } : {}).end();
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    port = (server!.address() as AddressInfo).port;
  };
  await listen();
  const stop = async () => {
    if (!server) return;
    const closing = server;
    server = undefined;
    closing.closeAllConnections();
    await new Promise((resolve) => closing.close(resolve));
  };
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    down: stop,
    up: listen,
    answerWith(next, nextLocation) {
      status = next;
      location = nextLocation;
    },
    close: stop,
  };
}
