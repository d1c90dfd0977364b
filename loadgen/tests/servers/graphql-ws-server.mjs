// A GraphQL subscription server on the graphql-ws library (protocol
// graphql-transport-ws), for loadgen's profile tests.
//
//   subscription { ticks(n: 5, everyMs: 20, skip: -1) }
//
// yields 0, 1, ..., n-1 every `everyMs` ms, leaving out `skip` (a server
// that loses one result), then completes. Prints "LISTENING <port>" once
// ready; PORT=0 (the default) picks a free port on 127.0.0.1.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import {
  GraphQLSchema, GraphQLObjectType, GraphQLInt, GraphQLNonNull, GraphQLString,
} from 'graphql';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: { hello: { type: GraphQLString, resolve: () => 'world' } },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      ticks: {
        type: GraphQLInt,
        args: {
          n: { type: new GraphQLNonNull(GraphQLInt) },
          everyMs: { type: new GraphQLNonNull(GraphQLInt) },
          skip: { type: GraphQLInt, defaultValue: -1 },
        },
        subscribe: async function* (_root, { n, everyMs, skip }) {
          for (let i = 0; i < Math.min(n, 1000); i++) {
            if (i > 0) await sleep(everyMs);
            if (i !== skip) yield { ticks: i };
          }
        },
      },
    },
  }),
});

const server = createServer((_req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({ server, path: '/graphql' });
useServer({ schema }, wss);
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`LISTENING ${server.address().port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
