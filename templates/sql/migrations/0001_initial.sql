-- 0001: the original project's public tables and the claude_flow schema.
-- Applied once per database by dpgc (src/components/schema.ts), inside one
-- transaction, as the database owner; recorded in dpgc.schema_migrations.
-- Never edit this file once applied anywhere: write 0002_… instead.
-- <%= it.vec %> is the vector engine's type, e.g. vector(384) (src/components/vector.ts).
-- The HNSW indexes are not here: their access method and operator class depend
-- on the engine release, so dpgc ensures them on every run from schema.ts.

CREATE TABLE public.memory_entries (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace   text NOT NULL,
  key         text NOT NULL,
  value       text NOT NULL,
  embedding   <%= it.vec %>,
  metadata    jsonb NOT NULL DEFAULT '{}',
  tags        text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  CONSTRAINT memory_entries_namespace_key_key UNIQUE (namespace, key)
);
CREATE INDEX memory_entries_key_idx ON public.memory_entries (key);
CREATE INDEX memory_entries_metadata_gin ON public.memory_entries USING gin (metadata jsonb_path_ops);
CREATE INDEX memory_entries_tags_gin ON public.memory_entries USING gin (tags);
CREATE INDEX memory_entries_expires_at_idx ON public.memory_entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE public.patterns (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace      text NOT NULL DEFAULT 'default',
  name           text NOT NULL,
  type           text NOT NULL,
  description    text,
  pattern_data   jsonb NOT NULL DEFAULT '{}',
  embedding      <%= it.vec %>,
  confidence     double precision NOT NULL DEFAULT 0.5 CHECK (confidence BETWEEN 0 AND 1),
  usage_count    integer NOT NULL DEFAULT 0,
  success_count  integer NOT NULL DEFAULT 0,
  metadata       jsonb NOT NULL DEFAULT '{}',
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT patterns_namespace_name_key UNIQUE (namespace, name)
);
CREATE INDEX patterns_type_idx ON public.patterns (type);
CREATE INDEX patterns_pattern_data_gin ON public.patterns USING gin (pattern_data jsonb_path_ops);
CREATE INDEX patterns_metadata_gin ON public.patterns USING gin (metadata jsonb_path_ops);

CREATE TABLE public.pattern_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pattern_id      bigint NOT NULL REFERENCES public.patterns (id) ON DELETE CASCADE,
  event           text NOT NULL,
  old_confidence  double precision,
  new_confidence  double precision,
  context         jsonb NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pattern_history_pattern_id_idx ON public.pattern_history (pattern_id, created_at);
CREATE INDEX pattern_history_event_idx ON public.pattern_history (event);

CREATE TABLE public.trajectories (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace     text NOT NULL DEFAULT 'default',
  session_id    text,
  agent_id      text,
  type          text NOT NULL DEFAULT 'task',
  task          text,
  steps         jsonb NOT NULL DEFAULT '[]',
  outcome       text,
  reward        double precision,
  embedding     <%= it.vec %>,
  metadata      jsonb NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz
);
CREATE INDEX trajectories_namespace_idx ON public.trajectories (namespace);
CREATE INDEX trajectories_session_id_idx ON public.trajectories (session_id);
CREATE INDEX trajectories_type_idx ON public.trajectories (type);
CREATE INDEX trajectories_metadata_gin ON public.trajectories USING gin (metadata jsonb_path_ops);

CREATE TABLE public.graph_nodes (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace   text NOT NULL DEFAULT 'default',
  node_key    text NOT NULL,
  type        text NOT NULL,
  label       text,
  properties  jsonb NOT NULL DEFAULT '{}',
  embedding   <%= it.vec %>,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT graph_nodes_namespace_node_key_key UNIQUE (namespace, node_key)
);
CREATE INDEX graph_nodes_type_idx ON public.graph_nodes (type);
CREATE INDEX graph_nodes_properties_gin ON public.graph_nodes USING gin (properties jsonb_path_ops);

CREATE TABLE public.graph_edges (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace   text NOT NULL DEFAULT 'default',
  source_id   bigint NOT NULL REFERENCES public.graph_nodes (id) ON DELETE CASCADE,
  target_id   bigint NOT NULL REFERENCES public.graph_nodes (id) ON DELETE CASCADE,
  type        text NOT NULL,
  weight      double precision NOT NULL DEFAULT 1.0,
  properties  jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT graph_edges_source_target_type_key UNIQUE (source_id, target_id, type)
);
CREATE INDEX graph_edges_target_id_idx ON public.graph_edges (target_id);
CREATE INDEX graph_edges_type_idx ON public.graph_edges (type);
CREATE INDEX graph_edges_properties_gin ON public.graph_edges USING gin (properties jsonb_path_ops);

-- Poincaré-ball coordinates cannot be searched with a cosine index; the
-- embedding column holds their tangent-space (Euclidean) projection for HNSW.
CREATE TABLE public.hyperbolic_embeddings (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace    text NOT NULL DEFAULT 'default',
  entity_type  text NOT NULL,
  entity_id    text NOT NULL,
  curvature    double precision NOT NULL DEFAULT -1.0 CHECK (curvature < 0),
  coordinates  double precision[] NOT NULL,
  embedding    <%= it.vec %>,
  metadata     jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT hyperbolic_embeddings_entity_key UNIQUE (namespace, entity_type, entity_id)
);
CREATE INDEX hyperbolic_embeddings_metadata_gin ON public.hyperbolic_embeddings USING gin (metadata jsonb_path_ops);

-- A registry of the vector indexes, for tools that want to know them without the catalog.
CREATE TABLE public.vector_indexes (
  name             text PRIMARY KEY,
  schema_name      text NOT NULL,
  table_name       text NOT NULL,
  column_name      text NOT NULL,
  dimensions       integer NOT NULL,
  metric           text NOT NULL DEFAULT 'cosine',
  index_type       text NOT NULL DEFAULT 'hnsw',
  m                integer,
  ef_construction  integer,
  created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.sessions (
  id              text PRIMARY KEY,
  namespace       text NOT NULL DEFAULT 'default',
  agent_id        text,
  state           jsonb NOT NULL DEFAULT '{}',
  metadata        jsonb NOT NULL DEFAULT '{}',
  started_at      timestamptz NOT NULL DEFAULT now(),
  last_active_at  timestamptz NOT NULL DEFAULT now(),
  ended_at        timestamptz,
  expires_at      timestamptz
);
CREATE INDEX sessions_namespace_idx ON public.sessions (namespace);
CREATE INDEX sessions_agent_id_idx ON public.sessions (agent_id);
CREATE INDEX sessions_state_gin ON public.sessions USING gin (state jsonb_path_ops);

CREATE TABLE public.metadata (
  key         text PRIMARY KEY,
  value       text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO public.metadata (key, value) VALUES ('schema_version', '1');

CREATE SCHEMA claude_flow;
CREATE TABLE claude_flow.embeddings (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  content     text NOT NULL,
  embedding   <%= it.vec %> NOT NULL,
  metadata    jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX embeddings_metadata_gin ON claude_flow.embeddings USING gin (metadata jsonb_path_ops);
