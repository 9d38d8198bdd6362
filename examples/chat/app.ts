import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import Koa, { type Context, type Next } from 'koa';
import { BrokerUnavailableError, corsMiddleware, defaultProfileUrl, ignoreClientDisconnects, InvalidArgumentError, sendError, serverEventsMiddleware, type ServerEvents } from '../../src/index.js';
import { chatServices, escapeHtml } from './services.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const publicDir = join(here, 'public');

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
};

export interface ChatOptions {
  /** A URL, or an image file on this machine, shown behind the page. Default: the first bundled background. */
  background?: string;
  /** Shown in the page title, e.g. the port, to tell instances apart. */
  label?: string;
  /**
   * Origins whose pages may use the whole app, with credentials: the Server
   * Events routes and Chat's services, as ServiceStack's Chat allows its
   * listed origins. Default: none.
   */
  cors?: string[];
}

/** A static file held in memory: the page is small and served often. */
interface Asset {
  body: Buffer | string;
  type: string;
}

/**
 * The Chat app as a Koa app over a started `ServerEvents`: the Server Events
 * routes, chat's services, and the page with its bundled script.
 */
export async function createChatApp(events: ServerEvents, options: ChatOptions = {}): Promise<Koa> {
  const assets = await loadAssets();
  const background = await resolveBackground(options.background, assets);
  const page = assets.get('/index.html')!.body.toString()
    .replaceAll('%BACKGROUND%', escapeHtml(background))
    .replaceAll('%TITLE%', escapeHtml(options.label ? `Chat · ${options.label}` : 'Chat'))
    .replaceAll('%SUBTITLE%', escapeHtml(options.label ? `server ${options.label}` : ''));
  assets.set('/', { body: page, type: contentTypes['.html']! });
  assets.delete('/index.html');

  const app = new Koa();
  ignoreClientDisconnects(app);
  // CORS first, so that error answers carry its headers too and a page elsewhere can read them.
  if (options.cors) app.use(corsMiddleware({ origins: options.cors }));
  app.use(answerErrors);
  app.use(serverEventsMiddleware(events));
  app.use(chatServices(events).routes());
  app.use(async (ctx, next) => {
    const asset = ctx.method === 'GET' || ctx.method === 'HEAD' ? assets.get(ctx.path) : undefined;
    if (!asset) return next();
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = asset.body;
  });
  return app;
}

/** Errors in ServiceStack's shape, `{responseStatus:{errorCode,message}}`, which its Chat page shows; a 500 hides its cause and is logged. */
async function answerErrors(ctx: Context, next: Next): Promise<void> {
  try {
    await next();
  } catch (error) {
    if (error instanceof BrokerUnavailableError) return sendError(ctx, 503, 'The broker is unavailable; try again shortly', 2);
    const { status, message, expose } = error as { status?: number; message?: string; expose?: boolean };
    const known = error instanceof InvalidArgumentError ? error.status : typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
    if (known === undefined) console.error(`chat: ${(error as Error).stack ?? String(error)}`);
    sendError(ctx, known ?? 500, known === undefined ? 'Internal Server Error' : expose === false ? 'Bad Request' : (message ?? 'Bad Request'));
  }
}

/** Every file under public/, plus the page script bundled from page/main.ts. */
async function loadAssets(): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  const walk = async (dir: string, prefix: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path, `${prefix}${entry.name}/`);
      else assets.set(`${prefix}${entry.name}`, { body: await readFile(path), type: contentTypes[extname(entry.name)] ?? 'application/octet-stream' });
    }
  };
  await walk(publicDir, '/');
  assets.set('/app.js', { body: await pageScript(), type: contentTypes['.js']! });
  // ServiceStack's own Chat page asks for these two: it gets our first background and the default silhouette.
  assets.set('/img/bg.jpg', assets.get('/img/bg-1.svg')!);
  assets.set('/img/no-profile64.png', { body: decodeURIComponent(defaultProfileUrl.slice(defaultProfileUrl.indexOf(',') + 1)), type: contentTypes['.svg']! });
  return assets;
}

let bundled: Promise<string> | undefined;

/** The page script, bundled once per process with the project's client. */
function pageScript(): Promise<string> {
  bundled ??= build({
    entryPoints: [join(here, 'page', 'main.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    write: false,
  }).then((result) => result.outputFiles[0]!.text);
  return bundled;
}

/** A URL is used as it is; an image file is served at `/background{ext}`. */
async function resolveBackground(background: string | undefined, assets: Map<string, Asset>): Promise<string> {
  if (!background) return '/img/bg-1.svg';
  if (/^(https?:)?\/\//.test(background) || background.startsWith('/img/') || background.startsWith('data:')) return background;
  const type = contentTypes[extname(background).toLowerCase()];
  if (!type?.startsWith('image/')) throw new Error(`--background '${background}' is neither a URL nor an image file (.svg, .png, .jpg, .gif, .webp)`);
  let body: Buffer;
  try {
    body = await readFile(background);
  } catch {
    throw new Error(`--background '${background}' cannot be read`);
  }
  const path = `/background${extname(background).toLowerCase()}`;
  assets.set(path, { body, type });
  return path;
}
