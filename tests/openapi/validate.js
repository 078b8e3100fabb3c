// Validates an OpenAPI document against the official OpenAPI 3 JSON schema and resolves
// every $ref (swagger-parser). Usage: node validate.js path/to/openapi.yaml
"use strict";
const SwaggerParser = require("@apidevtools/swagger-parser");

const file = process.argv[2] || "../../openapi.yaml";
SwaggerParser.validate(file)
  .then((api) => {
    console.log(`valid: ${api.info.title} ${api.info.version}, ${Object.keys(api.paths).length} paths`);
  })
  .catch((err) => {
    console.error(`invalid: ${err.message}`);
    process.exit(1);
  });
