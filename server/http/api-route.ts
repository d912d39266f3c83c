import type express from 'express';
import type { Request, Response } from 'express';
import type { z } from 'zod';
import { parseInput } from './parse-body.js';

// One declaration per admin API route: its method and path, what it is for, the zod schemas of its path
// parameters, query and body, and its answers. mount() validates each request with those schemas before the
// handler runs, and openapi.ts documents the route from the same declaration, so the two cannot drift.

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One answer as documented: what it means and, for a JSON body, its JSON Schema (often a $ref to a component). */
export interface ResponseDoc { description: string; schema?: object }

export interface ApiRoute<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: HttpMethod;
  /** Express path, e.g. /api/v1/users/:id */
  path: string;
  summary: string;
  description?: string;
  /** false: answered without the admin token (the health check, the document itself). */
  auth?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  responses: Record<number, ResponseDoc>;
}

export interface RouteInput<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  params: z.output<P>;
  query: z.output<Q>;
  body: z.output<B>;
}

/** Declares a route (the identity function: it keeps the schemas' types for mount()). */
export function apiRoute<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType>(
  route: ApiRoute<P, Q, B>,
): ApiRoute<P, Q, B> {
  return route;
}

/** Registers `handler` for the route; it runs with the path parameters, query and body its schemas validated. */
export function mount<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  router: express.Router | express.Express,
  route: ApiRoute<P, Q, B>,
  handler: (input: RouteInput<P, Q, B>, req: Request, res: Response) => unknown,
): void {
  // An Express app routes like a Router; one signature keeps the overloads apart.
  (router as express.Router)[route.method](route.path, async (req: Request, res: Response) => {
    const input = {
      params: route.params ? parseInput(route.params, req.params, 'path') : {},
      query: route.query ? parseInput(route.query, req.query, 'query') : {},
      body: route.body ? parseInput(route.body, req.body, 'body') : undefined,
    } as RouteInput<P, Q, B>;
    await handler(input, req, res);
  });
}

/** /api/v1/users/:id → /api/v1/users/{id} */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
