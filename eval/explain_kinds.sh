#!/usr/bin/env bash
# `kgqa ask --explain` for one question of each kind, and the conjunction on Neo4j (its one Cypher query):
# eval/results/complex/explain.txt. Needs the trained movie models (make models); the last question needs a
# Neo4j server holding the bundled graph (services/neo4j/start.sh, then kgqa kg load ... --graph URI).
#   bash eval/explain_kinds.sh > eval/results/complex/explain.txt
set -u
KGQA="${KGQA:-.venv/bin/kgqa}"
NEO4J="${NEO4J_URI:-bolt://127.0.0.1:7687}"
export COLUMNS=110
for q in "who directed The Shawshank Redemption" \
         "which films did Tom Hanks and Meg Ryan star in together" \
         "which Steven Spielberg films came out in 1993" \
         "how many films did Christopher Nolan direct" \
         "what is the earliest film directed by Alfred Hitchcock" \
         "did Ridley Scott direct Alien"; do
  echo "\$ kgqa ask \"$q\" --explain"
  "$KGQA" ask "$q" --explain 2>&1
  echo
done
echo "\$ kgqa ask \"which films did Tom Hanks and Meg Ryan star in together\" --explain --graph $NEO4J   # Neo4j: the program as one Cypher query (no trained models for this graph: name matching)"
"$KGQA" ask "which films did Tom Hanks and Meg Ryan star in together" --explain --graph "$NEO4J" 2>&1
