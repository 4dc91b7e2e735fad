// Encodes texts with gpt-tokenizer's r50k_base (GPT-2) encoding: the reference our tokenizer is
// compared against (tests/data/tokenizer_reference_test.cc) and benchmarked against
// (data/programs/tokenizer_bench.cc).
//
//   node reference_encode.js PACKAGE_DIR encode INPUT.json OUTPUT.json
//       INPUT.json: a JSON array of strings; OUTPUT.json: a JSON array of id arrays.
//   node reference_encode.js PACKAGE_DIR bench TEXT_FILE SECONDS
//       Encodes the UTF-8 text file repeatedly for at least SECONDS (after one warm-up pass) and
//       prints "bytes=<n> seconds=<s> tokens=<t>".
// Special-token names in the text are encoded as ordinary text, as our BpeTokenizer::Encode does.
'use strict';
const fs = require('fs');
const path = require('path');
const [packageDir, mode, input, arg] = process.argv.slice(2);
const { encode } = require(path.join(packageDir, 'cjs', 'encoding', 'r50k_base.js'));
const options = { disallowedSpecial: new Set() };

if (mode === 'encode') {
  const texts = JSON.parse(fs.readFileSync(input, 'utf8'));
  fs.writeFileSync(arg, JSON.stringify(texts.map((t) => encode(t, options))));
} else if (mode === 'bench') {
  const buffer = fs.readFileSync(input);
  const text = buffer.toString('utf8');
  let tokens = encode(text, options).length;  // warm-up
  const minSeconds = Number(arg || '3');
  let passes = 0;
  const start = process.hrtime.bigint();
  let seconds = 0;
  while (passes === 0 || seconds < minSeconds) {
    tokens = encode(text, options).length;
    passes++;
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  }
  console.log(`bytes=${buffer.length * passes} seconds=${seconds} tokens=${tokens}`);
} else {
  console.error('usage: reference_encode.js PACKAGE_DIR encode|bench ...');
  process.exit(2);
}
