// Sign a request the way a provider's own Node library does.
//
//     node sign.mjs PROVIDER SECRET ID TIMESTAMP < body
//
// Prints the headers the provider would send, `Name: value`, one a line.
// PROVIDER: github (@octokit/webhooks-methods), stripe (stripe's
// generateTestHeaderString, the helper Stripe documents for tests).
import { readFileSync } from "node:fs";
import { sign } from "@octokit/webhooks-methods";
import Stripe from "stripe";

const [provider, secret, id, ts] = process.argv.slice(2);
const body = readFileSync(0, "utf8");

if (provider === "github") {
  const sig = await sign(secret, body);
  console.log(`x-github-delivery: ${id}\nx-hub-signature-256: ${sig}`);
} else if (provider === "stripe") {
  const header = Stripe.webhooks.generateTestHeaderString({
    payload: body,
    secret,
    timestamp: Number(ts),
  });
  console.log(`stripe-signature: ${header}`);
} else {
  console.error(`unknown provider ${provider}`);
  process.exit(2);
}
