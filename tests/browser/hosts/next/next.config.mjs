// A static export (out/): the test's FastAPI host serves the files, no Node server.
/** @type {import('next').NextConfig} */
const config = { output: "export" };

export default config;
