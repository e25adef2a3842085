#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline (scripts/check-k8s.sh runs it on each overlay).

  validate.py --crds DIR [--kubernetes-version 1.32] [--prometheus-out DIR] FILE...

- Core kinds (Deployment, Service, StatefulSet, ...) against the Kubernetes schemas that the
  PyPI package kubernetes-validate bundles, strictly (an unknown field is an error).
- Custom resources (Strimzi's Kafka, KafkaNodePool, KafkaTopic, KafkaUser; KEDA's ScaledObject,
  TriggerAuthentication) against the openAPIV3Schema of their CustomResourceDefinition in DIR,
  also strictly: an object schema that lists its properties and does not say it keeps unknown
  fields refuses others, as the API server's strict field validation does.
- With --prometheus-out, writes the Prometheus configuration and rules found in the ConfigMaps
  prometheus-config and prometheus-rules there, laid out as the pod mounts them, for promtool.

Prints one line per problem (file, kind/name, where, what) and exits 1 when there is any.
"""
import argparse
import copy
import glob
import os
import sys

import jsonschema
import kubernetes_validate
import yaml


def load_crds(folder):
    """(apiVersion, kind) -> the version's openAPIV3Schema, for every CRD under folder."""
    schemas = {}
    for path in sorted(glob.glob(os.path.join(folder, '**', '*.yaml'), recursive=True)):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get('kind') != 'CustomResourceDefinition':
                    continue
                group = doc['spec']['group']
                kind = doc['spec']['names']['kind']
                for version in doc['spec']['versions']:
                    if version.get('served', True):
                        schemas[(f"{group}/{version['name']}", kind)] = version['schema']['openAPIV3Schema']
    return schemas


def strict(schema):
    """A copy of an OpenAPI schema in which objects with listed properties refuse unknown ones."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'object' and 'properties' in node and 'additionalProperties' not in node \
                    and not node.get('x-kubernetes-preserve-unknown-fields'):
                node['additionalProperties'] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # apiVersion, kind and metadata are the API server's, not the CRD's
    schema.setdefault('properties', {}).update({'apiVersion': {'type': 'string'}, 'kind': {'type': 'string'}, 'metadata': {'type': 'object'}})
    return schema


def where(error):
    return '.'.join(str(p) for p in error.absolute_path) or '(top)'


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--crds', required=True, help='folder of CustomResourceDefinitions (../shared/k8s-crds)')
    parser.add_argument('--kubernetes-version', default='1.32')
    parser.add_argument('--prometheus-out', help='write the Prometheus config and rules of the ConfigMaps here')
    parser.add_argument('files', nargs='+')
    args = parser.parse_args()

    crds = {key: strict(schema) for key, schema in load_crds(args.crds).items()}
    if not crds:
        sys.exit(f'no CustomResourceDefinitions under {args.crds}')
    problems = []
    counts = {}
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            kind = doc.get('kind', '?')
            name = (doc.get('metadata') or {}).get('name', '?')
            label = f"{path}: {kind}/{name}"
            key = (doc.get('apiVersion'), kind)
            counts[kind] = counts.get(kind, 0) + 1
            if key in crds:
                for error in sorted(jsonschema.Draft7Validator(crds[key]).iter_errors(doc), key=lambda e: list(e.absolute_path)):
                    problems.append(f"{label}: {where(error)}: {error.message}")
            elif '.' in (doc.get('apiVersion') or '').split('/')[0] and doc['apiVersion'].split('/')[0].endswith(('strimzi.io', 'keda.sh')):
                problems.append(f"{label}: no CustomResourceDefinition for {doc['apiVersion']} {kind} under {args.crds}")
            else:
                try:
                    kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    problems.append(f"{label}: {where(error)}: {error.message}")
                except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
                    problems.append(f"{label}: no Kubernetes {args.kubernetes_version} schema for {doc.get('apiVersion')} {kind}: {error}")
            if args.prometheus_out and kind == 'ConfigMap' and name.startswith(('prometheus-config', 'prometheus-rules')):
                folder = args.prometheus_out if name.startswith('prometheus-config') else os.path.join(args.prometheus_out, 'rules')
                os.makedirs(folder, exist_ok=True)
                for file, text in (doc.get('data') or {}).items():
                    with open(os.path.join(folder, file), 'w') as out:
                        out.write(text)
    for line in problems:
        print(line)
    summary = ', '.join(f'{n} {k}' for k, n in sorted(counts.items()))
    print(f"{'FAILED' if problems else 'valid'}: {summary} ({len(problems)} problem{'s' if len(problems) != 1 else ''})")
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
