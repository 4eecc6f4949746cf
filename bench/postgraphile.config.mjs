// PostGraphile 5 as the dashboard benchmark's peer (bench/peers.py starts it; run with Node 22).
// The database and port come from the environment; production-ish: no GraphiQL, no watch,
// no explain, errors masked, the Amber preset as shipped.
import { fileURLToPath } from "node:url";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { pgSmartTagsFromFile } from "postgraphile/utils";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  // the app's tables carry no foreign keys: the relations to users come from smart tags
  plugins: [pgSmartTagsFromFile(fileURLToPath(new URL("postgraphile.tags.json5", import.meta.url)))],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: Number(process.env.PG_POOL_SIZE ?? 10) },
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5678),
    graphiql: false,
    watch: false,
    websockets: false,
  },
  grafast: { explain: false },
};

export default preset;
