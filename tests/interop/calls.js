// Unary gRPC calls through @grpc/grpc-js, a client independent of grpc core.
// stdin: {"address": "host:port", "calls": [{"path", "request" (base64), "metadata": {...}}]}
// stdout: one JSON object per call: {"code", "details", "response" (base64), "trailers"}.
"use strict";
const grpc = require("@grpc/grpc-js");

const identity = (buffer) => buffer;

function call(client, { path, request, metadata }) {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata || {})) md.set(key, value);
  return new Promise((resolve) => {
    let result = null;
    let trailers = null;
    const done = () => {
      if (result !== null && trailers !== null) resolve({ ...result, trailers });
    };
    const deadline = new Date(Date.now() + 10000);
    const unary = client.makeUnaryRequest(
      path, identity, identity, Buffer.from(request, "base64"), md, { deadline },
      (error, response) => {
        result = {
          code: error ? error.code : 0,
          details: error ? error.details : "",
          response: response ? response.toString("base64") : "",
        };
        done();
      },
    );
    // The trailers come with the status, which may arrive before or after the callback.
    unary.on("status", (status) => { trailers = status.metadata.getMap(); done(); });
  });
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { address, calls } = JSON.parse(Buffer.concat(chunks).toString());
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  for (const each of calls) {
    process.stdout.write(JSON.stringify(await call(client, each)) + "\n");
  }
  client.close();
}

main().catch((error) => { console.error(error); process.exit(1); });
