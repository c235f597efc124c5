import { LoginForm } from "../../components/LoginForm";

export default async function Login({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const { error } = await searchParams;
  return <LoginForm failed={error === "1"} />;
}
