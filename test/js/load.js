// load requires an npm package of the harness: from ROOMLOG_NODE_MODULES
// if set, else from test/js/node_modules (installed by scripts/npm-deps.sh),
// else from Node's own search path.
"use strict";

const path = require("path");

module.exports = function load(name) {
  const dirs = [process.env.ROOMLOG_NODE_MODULES, path.join(__dirname, "node_modules")].filter(Boolean);
  for (const d of dirs) {
    try {
      return require(path.join(d, name));
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  return require(name);
};
