// Validates prometheus-operator objects (a JSON array on stdin) against the CRD schemas
// generated from the pinned @kubernetes-models/prometheus-operator release.
// Prints one line per problem and exits 1 when any object is invalid.
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const input = await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
});

let failed = 0;
for (const obj of JSON.parse(input)) {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  if (obj.apiVersion !== "monitoring.coreos.com/v1" || !(obj.kind in v1)) {
    console.log(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new v1[obj.kind](obj).validate();
  } catch (err) {
    console.log(`${where}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
