// Svix's JavaScript SDK (npm `svix`) against relay: what a team's Node code does, run
// unchanged but for the server URL and the token. tests/integration/test_svix_js.py runs
// it and checks what relay stored and what the receiver got; it prints one JSON line.
import assert from "node:assert/strict";
import { Svix } from "svix";

const [serverUrl, token, receiver, secret] = process.argv.slice(2);
const svix = new Svix(token, { serverUrl });

const app = await svix.application.getOrCreate({ name: "Acme", uid: "acme" });
const endpoint = await svix.endpoint.create(app.id, {
  url: `${receiver}/js`, uid: "js-hook", eventTypes: ["lead.qualified"], secret,
});
assert.equal((await svix.endpoint.getSecret(app.id, "js-hook")).key, secret);
const message = await svix.message.create(app.id, {
  eventType: "lead.qualified", eventId: "js-1", payload: { from: "node" },
});

// Svix's kitchen sink: a repeated eventId is caught as a 409, and an endpoint made
// without event types has none.
let conflict = null;
try {
  await svix.message.create(app.id, { eventType: "lead.qualified", eventId: "js-1", payload: {} });
} catch (e) {
  conflict = { code: e.code, body: e.body };
}
assert.equal(conflict?.code, 409);
assert.equal(conflict.body.code, "conflict");
const all = await svix.endpoint.create(app.id, { url: `${receiver}/all`, channels: ["c"] });
assert.deepEqual(all.eventTypes || [], []);
const listed = await svix.endpoint.list(app.id, { limit: 1 });
assert.equal(listed.data.length, 1);
assert.equal(listed.done, false);
await svix.endpoint.rotateSecret(app.id, all.id, {});
await svix.endpoint.delete(app.id, all.id);
await svix.health.get();

console.log(JSON.stringify({ app: app.id, endpoint: endpoint.id, message: message.id }));
