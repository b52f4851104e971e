"""A plain OpenDHT client (Debian python3-opendht) for the rendezvous tests, run inside the rig's
internet namespace: what anybody on the DHT can do with a rendezvous key.

  dht_tool.py get BOOTSTRAP KEY_HEX             prints {"values": [hex, ...]}
  dht_tool.py put BOOTSTRAP KEY_HEX VALUE_HEX   stores the bytes there; prints {"ok": bool}
"""
import json
import sys

import opendht as dht


def main(argv):
    cmd, bootstrap, key = argv[1], argv[2], argv[3]
    host, port = bootstrap.rsplit(":", 1)
    node = dht.DhtRunner()
    node.run(port=0)
    node.bootstrap(host, port)
    where = dht.InfoHash(key.encode())
    try:
        if cmd == "get":
            values = node.get(where)
            print(json.dumps({"values": [bytes(v.data).hex() for v in values]}), flush=True)
        elif cmd == "put":
            ok = node.put(where, dht.Value(bytes.fromhex(argv[4])))
            print(json.dumps({"ok": bool(ok)}), flush=True)
        else:
            sys.exit("usage: dht_tool.py get|put BOOTSTRAP KEY_HEX [VALUE_HEX]")
    finally:
        node.join()


if __name__ == "__main__":
    main(sys.argv)
