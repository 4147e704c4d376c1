/** The agent's own version (agents/package.json), reported in its facts and by `drover-agent version`. */
export const AGENT_VERSION = '0.1.0';
