// Turns the raw text of the Debian-packaged corpora into JSON Lines, one document per line:
// {"id": "...", "text": "..."}. Used by scripts/prepare_corpus.sh.
//
//   node corpus_to_jsonl.js kjv BIBLE_OUTPUT.txt OUT.jsonl
//       BIBLE_OUTPUT.txt: `bible -f gen1:1-rev22:21` output, one verse per line, "Ge1:1 In the
//       beginning ...". One document per chapter: its verses, one per line, labels removed.
//   node corpus_to_jsonl.js rst SOURCES_DIR OUT.jsonl
//       SOURCES_DIR: a Sphinx html/_sources tree of *.rst.txt files. One document per file,
//       cleaned: reST comments, labels and non-text directives (index, toctree, highlight,
//       kernel-doc, ...) with their option lines removed; roles like :func:`name <target>`
//       reduced to their text; trailing spaces stripped; runs of blank lines collapsed.
'use strict';
const fs = require('fs');
const path = require('path');

function writeJsonl(out, docs) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = out + '.tmp';
  fs.writeFileSync(tmp, docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  fs.renameSync(tmp, out);
  const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
  console.log(`${out}: ${docs.length} documents, ${bytes} bytes of text`);
}

function kjv(input, out) {
  const docs = [];
  let current = null;
  for (const line of fs.readFileSync(input, 'utf8').split('\n')) {
    const m = /^(\S+?):(\d+) (.*)$/.exec(line);
    if (!m) continue;
    if (!current || current.id !== m[1]) {
      current = { id: m[1], verses: [] };
      docs.push(current);
    }
    current.verses.push(m[3].trim());
  }
  writeJsonl(out, docs.map((c) => ({ id: c.id, text: c.verses.join('\n') + '\n' })));
}

const DROPPED_DIRECTIVES = new Set([
  'index', 'toctree', 'highlight', 'highlightlang', 'currentmodule', 'module', 'moduleauthor',
  'sectionauthor', 'include', 'literalinclude', 'kernel-doc', 'kernel-abi', 'kernel-feat',
  'kernel-include', 'tabularcolumns', 'raw', 'only', 'image', 'figure', 'csv-table',
  'contents', 'autosummary', 'maintainers-include', 'program', 'cssclass', 'role',
]);

function cleanRst(text) {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const directive = /^(\s*)\.\.\s+([\w:-]+)::/.exec(line);
    const comment = /^(\s*)\.\.(\s|$)/.test(line) && !directive;
    if ((directive && DROPPED_DIRECTIVES.has(directive[2])) || comment) {
      // Drop the line and everything indented deeper that follows (options, comment body).
      const indent = (directive ? directive[1] : /^(\s*)/.exec(line)[1]).length;
      while (i + 1 < lines.length) {
        const next = lines[i + 1];
        if (next.trim() === '' || /^(\s*)/.exec(next)[1].length > indent) {
          if (next.trim() === '' && i + 2 < lines.length &&
              /^(\s*)/.exec(lines[i + 2])[1].length <= indent && lines[i + 2].trim() !== '') {
            break;
          }
          i++;
        } else {
          break;
        }
      }
      continue;
    }
    out.push(line
      .replace(/:[\w-]+(?::[\w-]+)*:`([^`<]*?)\s*(?:<[^`>]*>)?`/g, (_, t) => t.replace(/^[~!]/, ''))
      .replace(/\s+$/, ''));
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trim() + '\n';
}

function rst(dir, out) {
  const files = [];
  (function walk(d) {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith('.rst.txt')) files.push(p);
    }
  })(dir);
  const docs = [];
  for (const f of files) {
    const text = cleanRst(fs.readFileSync(f, 'utf8'));
    if (text.trim().length > 0) docs.push({ id: path.relative(dir, f), text });
  }
  writeJsonl(out, docs);
}

const [mode, input, out] = process.argv.slice(2);
if (mode === 'kjv') kjv(input, out);
else if (mode === 'rst') rst(input, out);
else {
  console.error('usage: corpus_to_jsonl.js kjv|rst INPUT OUT.jsonl');
  process.exit(2);
}
