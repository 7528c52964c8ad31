// Validates custom resources (a JSON array on stdin) against the CRD schemas generated from the
// pinned @kubernetes-models packages: prometheus-operator (monitoring.coreos.com/v1) and the
// External Secrets Operator (external-secrets.io/v1).
// Prints one line per problem and exits 1 when any object is invalid.
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import * as externalSecrets from "@kubernetes-models/external-secrets/external-secrets.io/v1";

const models = {
  "monitoring.coreos.com/v1": monitoring,
  "external-secrets.io/v1": externalSecrets,
};

const input = await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
});

let failed = 0;
for (const obj of JSON.parse(input)) {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  const group = models[obj.apiVersion];
  if (!group || !(obj.kind in group)) {
    console.log(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new group[obj.kind](obj).validate();
  } catch (err) {
    console.log(`${where}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
