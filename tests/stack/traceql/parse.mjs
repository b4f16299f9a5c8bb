// Reads a JSON list of TraceQL queries on stdin; prints, for each, the offset of the first syntax
// error (null when the query parses) as a JSON list. Used by tests/stack/test_stack_dashboards.py.
import { parser } from "@grafana/lezer-traceql";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((query) => {
  let error = null;
  parser.parse(query).iterate({
    enter(node) {
      if (error === null && node.type.isError) error = node.from;
    },
  });
  return error;
});
process.stdout.write(JSON.stringify(results));
