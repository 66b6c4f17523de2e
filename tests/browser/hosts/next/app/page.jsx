export default function Home() {
  return <h1>Acme home</h1>;
}
