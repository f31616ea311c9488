/**
 * Manifests checked against the schemas of the programs that read them:
 * - Kubernetes objects with `kubernetes-models`, generated from Kubernetes' OpenAPI spec: its validators (ajv)
 *   check types, enums and required fields, and its TypeScript interfaces, type-checked by the compiler, catch
 *   the unknown (misspelt) fields that the OpenAPI schema lets through and the API server drops or refuses
 *   (kubectl's strict field validation);
 * - compose files with ajv against the Compose specification's JSON schema (test/fixtures/compose-spec.json, from
 *   compose-spec/compose-spec; the one npm package that bundles it has a 2021 copy without `name`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import ts from 'typescript';
import { repoRoot } from './fixtures.js';

export interface KubernetesDocument {
  /** where it came from, for messages: the file and the object's kind and name */
  where: string;
  object: Record<string, any>;
}

/** apps/v1 StatefulSet → kubernetes-models/apps/v1/StatefulSet; v1 Service → kubernetes-models/v1/Service */
const modelPath = (o: Record<string, any>) => `kubernetes-models/${o.apiVersion}/${o.kind}`;

/** Every problem of every object: one line each, naming the object. */
export async function kubernetesSchemaProblems(docs: readonly KubernetesDocument[]): Promise<string[]> {
  const problems: string[] = [];
  const known: KubernetesDocument[] = [];
  for (const doc of docs) {
    let model: (new (data: unknown) => { validate(): void }) | undefined;
    try {
      model = ((await import(modelPath(doc.object))) as Record<string, any>)[doc.object.kind];
    } catch {
      model = undefined;
    }
    if (model === undefined) {
      problems.push(`${doc.where}: no schema for ${doc.object.apiVersion} ${doc.object.kind}`);
      continue;
    }
    known.push(doc);
    try {
      new model(doc.object).validate();
    } catch (err) {
      problems.push(`${doc.where}: ${(err as Error).message.replace(/\s*\n\s*/g, '; ')}`);
    }
  }
  problems.push(...unknownFields(known));
  return problems;
}

/**
 * Type-checks `const doc: IStatefulSet = {...the object...}` for every object in one in-memory module: an object
 * literal may only have the properties of its type, at every depth, so a misspelt field is a compile error.
 */
function unknownFields(docs: readonly KubernetesDocument[]): string[] {
  const fileName = path.join(repoRoot, 'test', '__manifests__.ts');
  const starts: number[] = [];
  let text = '';
  docs.forEach((d, i) => {
    text += `import type { I${d.object.kind} as T${i} } from '${modelPath(d.object)}';\n`;
  });
  docs.forEach((d, i) => {
    starts.push(text.length);
    text += `export const doc${i}: T${i} = ${JSON.stringify(d.object, null, 1)};\n`;
  });
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === fileName ? ts.createSourceFile(name, text, version) : getSourceFile(name, version, ...rest);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    // JSON.stringify quotes every key, and the compiler quotes the quoted name again: '"privilegd"'
    const message = ts.flattenDiagnosticMessageText(d.messageText, '; ').replace(/'"([^"']+)"'/g, "'$1'").replace(/'\{ [^']*\}'/g, "'{...}'");
    if (d.file?.fileName !== fileName || d.start === undefined) return `manifest type check: ${message}`;
    let index = -1;
    while (index + 1 < starts.length && starts[index + 1]! <= d.start) index++;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const field = text.split('\n')[line]?.trim().replace(/^"([^"]*)":.*$/, '$1') ?? '';
    return `${docs[index]?.where ?? 'imports'}: ${message} (at ${field})`;
  });
}

let composeValidator: ReturnType<Ajv['compile']> | undefined;

/** The problems of one compose file's object against the Compose specification's schema. */
export function composeSchemaProblems(where: string, compose: unknown): string[] {
  if (composeValidator === undefined) {
    const schema = JSON.parse(readFileSync(path.join(repoRoot, 'test/fixtures/compose-spec.json'), 'utf8'));
    delete schema.$schema; // draft-07, under an https:// name that ajv's built-in draft-07 meta-schema does not carry
    composeValidator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  }
  if (composeValidator(compose)) return [];
  return (composeValidator.errors ?? []).map((e) => {
    const extra = e.params && 'additionalProperty' in e.params ? ` '${String(e.params.additionalProperty)}'` : '';
    return `${where}: ${e.instancePath || '/'} ${e.message ?? ''}${extra}`;
  });
}
