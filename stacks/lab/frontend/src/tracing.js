// Browser tracing: the OpenTelemetry web SDK, bundled from npm by esbuild (no CDN, no runtime
// imports). Spans go to the same origin (/otlp/v1/traces), which nginx proxies to the collector;
// every fetch to /api/* carries a W3C traceparent so the task API continues the browser's trace.
import { trace } from '@opentelemetry/api';
import { ZoneContextManager } from '@opentelemetry/context-zone';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, WebTracerProvider } from '@opentelemetry/sdk-trace-web';

export const SERVICE_NAME = 'task-frontend';

let provider = null;

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function startTracing() {
  if (provider !== null) {
    return provider;
  }
  const origin = window.location.origin;
  const exporter = new OTLPTraceExporter({
    // An absolute URL on the page's own origin: no CORS, and nginx is the only hop.
    url: new URL('/otlp/v1/traces', origin).href,
  });
  provider = new WebTracerProvider({
    resource: resourceFromAttributes({
      'service.name': SERVICE_NAME,
      'service.version': '1.0.0',
      'deployment.environment': 'lab',
    }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        scheduledDelayMillis: 1000,
        maxExportBatchSize: 64,
        maxQueueSize: 512,
      }),
    ],
  });
  provider.register({ contextManager: new ZoneContextManager() });

  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new FetchInstrumentation({
        // Same-origin requests get traceparent anyway; list /api explicitly so it also holds
        // when the page is opened through another host name of the same server.
        propagateTraceHeaderCorsUrls: [new RegExp('^' + escapeRegExp(origin) + '/api/')],
        // Never trace the exporter's own requests.
        ignoreUrls: [/\/otlp\//],
        clearTimingResources: true,
      }),
    ],
  });

  // Flush what is buffered when the tab is hidden or closed.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') {
      provider.forceFlush().catch(() => {});
    }
  });
  return provider;
}

export function tracer() {
  return trace.getTracer('lab-frontend', '1.0.0');
}

/** Exports every finished span now (used on page hide and by the browser test). */
export function flushTraces() {
  return provider === null ? Promise.resolve() : provider.forceFlush();
}
