// The runtime's own file server, beside examples/static-server.ts in the server benchmark (scripts/bench.mjs):
// Deno.serve streaming (await Deno.open(path)).readable, Bun.serve answering new Response(Bun.file(path)).
// Usage: deno run -A bench/runtime_server.ts <root> [port]   or   bun bench/runtime_server.ts <root> [port]
import process from "node:process";

// deno-lint-ignore no-explicit-any
declare const Bun: any;
const [root, port = "0"] = process.argv.slice(2);

function fileOf(request: Request): string {
  return root + decodeURIComponent(new URL(request.url).pathname);
}

if (typeof Deno !== "undefined") {
  const server = Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen: () => {} }, async (request) => {
    const path = fileOf(request);
    try {
      const file = await Deno.open(path);
      const { size } = await file.stat();
      return new Response(file.readable, { headers: { "content-length": String(size) } });
    } catch {
      return new Response("not found\n", { status: 404 });
    }
  });
  console.log(`listening on http://127.0.0.1:${server.addr.port}`);
} else {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: Number(port),
    fetch: (request: Request) => new Response(Bun.file(fileOf(request))),
  });
  console.log(`listening on http://127.0.0.1:${server.port}`);
}
