"""Reads what `kubectl create --dry-run=client -o json -f RENDERED` prints: the
check_*.py scripts that validate.sh runs on rendered manifests share it."""
import json


def read_objects(text):
    """kubectl prints one JSON document per object, one after the other."""
    decoder, objects, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        obj, end = decoder.raw_decode(text, at)
        objects.extend(obj["items"] if obj.get("kind") == "List" else [obj])
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return objects
